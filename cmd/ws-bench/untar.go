package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mount-ws/internal/detdata"
)

// The untar row extracts one archive of many small files, the way a user
// unpacks a data set or a source tree into the workspace. tar works one
// file at a time, so every close(2) waits for its upload; the SDK ceiling
// puts the same files 8 at once, as the create row does.
const (
	untarFiles = 2000
	untarDirs  = 20
)

// untarEntry is one regular file of the archive.
type untarEntry struct {
	Name string
	Seed uint64
	Size int64
}

// untarArchive is the archive, written once per run to a local file that
// tar reads. Sizes are 1–16 KiB, spread evenly over untarDirs directories.
type untarArchive struct {
	dir  string // where the archive file is written
	once sync.Once
	path string
	list []untarEntry
	err  error
}

func newUntarArchive(dir string) *untarArchive {
	rng := rand.New(rand.NewPCG(5, 5))
	list := make([]untarEntry, untarFiles)
	for i := range list {
		list[i] = untarEntry{
			Name: fmt.Sprintf("d%02d/f%04d.txt", i%untarDirs, i),
			Seed: uint64(1000 + i),
			Size: 1<<10 + rng.Int64N(15<<10),
		}
	}
	return &untarArchive{dir: dir, list: list}
}

// file writes the archive the first time it is asked for and returns its
// path.
func (a *untarArchive) file() (string, error) {
	a.once.Do(func() { a.path, a.err = a.write() })
	return a.path, a.err
}

func (a *untarArchive) write() (string, error) {
	path := filepath.Join(a.dir, "untar.tar")
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("untar archive: %w", err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	mtime := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for d := range untarDirs {
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: fmt.Sprintf("d%02d/", d), Mode: 0o755, ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", fmt.Errorf("untar archive: %w", err)
		}
	}
	for _, e := range a.list {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: e.Name, Mode: 0o644, Size: e.Size, ModTime: mtime}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", fmt.Errorf("untar archive: %w", err)
		}
		if _, err := io.Copy(tw, detdata.New(e.Seed, e.Size)); err != nil {
			return "", fmt.Errorf("untar archive: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return "", fmt.Errorf("untar archive: %w", err)
	}
	return path, f.Close()
}

// untarWorkload is the row.
func (b bench) untarWorkload() workload {
	d := b.data
	a := b.archive
	return workload{
		ID: "untar", Title: fmt.Sprintf("Untar %s files of 1–16 KiB in %d dirs", countName(untarFiles), untarDirs),
		Unit: "s", LowerIsBetter: true, Writes: true,
		SDKMethod:   "PutObject of every file, 8 at once",
		MountMethod: "tar -xf (GNU tar, one file at a time, modes and mtimes set)",
		SDK: func(ctx context.Context, s sdk) (float64, error) {
			dir := writeKey(d, "sdk-untar")
			entries := a.list
			start := time.Now()
			err := forEach(ctx, len(entries), 8, func(i int) error {
				e := entries[i]
				_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
					Bucket: &s.bucket, Key: aws.String(s.prefix + dir + "/" + e.Name),
					Body: detdata.New(e.Seed, e.Size), ContentLength: aws.Int64(e.Size),
				})
				return err
			})
			return time.Since(start).Seconds(), err
		},
		Mount: func(ctx context.Context, mnt string) (float64, error) {
			archive, err := a.file()
			if err != nil {
				return 0, err
			}
			dir := filepath.Join(mnt, writeKey(d, "mnt-untar"))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return 0, err
			}
			// tar prints nothing on success.
			return timeCommand(ctx, 0, "tar", "-xf", archive, "-C", dir)
		},
	}
}
