package main

import (
	"slices"
	"testing"
)

func TestSeedDirs(t *testing.T) {
	objs := []object{
		{Key: "full/big/seq-1.bin"},
		{Key: "full/tree/d000/obj-00000"},
		{Key: "full/big/par-0.bin"},
		{Key: "full/tree/d001/obj-00100"},
		{Key: "full/top.bin"},
		{Key: "loose"},
	}
	want := []string{"full/big/", "full/tree/", "full/", ""}
	if got := seedDirs(objs); !slices.Equal(got, want) {
		t.Errorf("seedDirs = %q, want %q", got, want)
	}
}
