package vfs

import (
	"context"
	"testing"
	"time"

	"mount-ws/bucket"
)

func TestWaitListedPageByPage(t *testing.T) {
	now := time.Unix(1e9, 0)
	c := NewDirCaches(10, func() time.Time { return now }).Hold("d")
	ctx := context.Background()
	p, under := c.StartListing("d/")
	if p == nil || under != nil {
		t.Fatal("the first StartListing did not make its caller the lister")
	}
	if mine, other := c.StartListing("d/"); mine != nil || other != p {
		t.Fatal("a second StartListing did not get the listing under way")
	}
	type answer struct {
		e  Entry
		ok bool
	}
	wait := func(name string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			e, ok := p.WaitListed(ctx, name)
			ch <- answer{e, ok}
		}()
		return ch
	}
	pending := func(name string, ch chan answer) {
		t.Helper()
		select {
		case a := <-ch:
			t.Fatalf("%s answered (%v) before a page covered it", name, a.ok)
		case <-time.After(20 * time.Millisecond):
		}
	}
	b, m, sub, z := wait("b"), wait("m"), wait("sub"), wait("z")
	pending("b", b)

	// Page 1 ends at "d/n": b and m are covered, sub and z are not.
	p.Page(bucket.Page{Objects: []bucket.Object{{Key: "d/b", Size: 2, ETag: "e1"}, {Key: "d/n"}}, Next: "t"}, nil)
	if a := <-b; !a.ok || a.e.Size != 2 {
		t.Errorf("b after the page holding it: %+v", a)
	}
	if a := <-m; a.ok {
		t.Errorf("m, covered but not listed, answered as found: %+v", a)
	}
	pending("sub", sub)

	// Page 2, the last: sub is a directory (its prefix "d/sub/"); z is
	// not there.
	p.Page(bucket.Page{Prefixes: []string{"d/sub/"}, Objects: []bucket.Object{{Key: "d/x"}}}, nil)
	if a := <-sub; !a.ok || !a.e.Dir {
		t.Errorf("sub after the last page: %+v", a)
	}
	if a := <-z; a.ok {
		t.Errorf("z, not listed, answered as found: %+v", a)
	}

	// A name removed here after the listing started is not answered
	// from it, however long ago that was (a name found missing is
	// remembered only for the negative TTL), nor installed.
	c.Set("x", nil)
	now = now.Add(time.Hour)
	c.Lookup("x", time.Hour, time.Second) // forgets that x was missing
	if _, ok := p.WaitListed(ctx, "x"); ok {
		t.Error("x answered from the listing after it was removed here")
	}
	if _, ok := p.WaitListed(ctx, "b"); !ok {
		t.Error("b not answered after the last page")
	}
	// Installed, the listing ends; the next StartListing starts anew.
	if !p.Install(p.Entries(), time.Second) {
		t.Fatal("Install refused a listing of the current generation")
	}
	select {
	case <-p.Ended():
	default:
		t.Error("Ended not closed after Install")
	}
	if _, ok := p.WaitListed(ctx, "b"); ok {
		t.Error("answered from a listing that ended")
	}
	if e, found, listed := c.Listed("b"); !listed || !found || e.Size != 2 {
		t.Errorf("Listed(b) after Install: %+v, %v, %v", e, found, listed)
	}
	if _, found, _ := c.Listed("x"); found {
		t.Error("x, removed here while the listing was read, was installed with it")
	}
	if mine, _ := c.StartListing("d/"); mine == nil {
		t.Error("no new listing could start after the last one ended")
	}
}

func TestWaitListedForgotten(t *testing.T) {
	// A rename forgets the cache: a listing started before it answers
	// nothing, and is not installed.
	c := NewDirCaches(10, time.Now).Hold("d")
	p, _ := c.StartListing("d/")
	p.Page(bucket.Page{Objects: []bucket.Object{{Key: "d/a"}}}, nil)
	c.forget()
	if _, ok := p.WaitListed(context.Background(), "a"); ok {
		t.Error("a answered from a listing started before the cache was forgotten")
	}
	if p.Install(p.Entries(), 0) {
		t.Error("a listing started before the cache was forgotten was installed")
	}
}

func TestWaitListedEndsWithTheListing(t *testing.T) {
	c := NewDirCaches(10, time.Now).Hold("d")
	p, _ := c.StartListing("d/")
	got := make(chan bool, 1)
	go func() {
		_, ok := p.WaitListed(context.Background(), "late")
		got <- ok
	}()
	time.Sleep(10 * time.Millisecond)
	p.End() // the listing failed, or was found too big
	select {
	case ok := <-got:
		if ok {
			t.Error("answered from a listing that ended without the name")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting lookup was not released when the listing ended")
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, _ = c.StartListing("d/")
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	if _, ok := p.WaitListed(ctx, "x"); ok {
		t.Error("answered after its context ended")
	}
}
