package main

import (
	"archive/zip"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// zipEpoch is the earliest time a zip entry can carry (MS-DOS time starts
// in 1980), the fallback when no commit time is given.
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// writeZip packs the files into dst under their base names, sorted, each
// with mtime and mode 0755, so that the bytes depend only on the contents:
// not on when or where the build ran, nor on the builder's umask.
func writeZip(dst string, mtime time.Time, files ...string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	for _, src := range sortedByBase(files) {
		if err := addFile(zw, src, mtime); err != nil {
			f.Close()
			return err
		}
	}
	if err := zw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func addFile(zw *zip.Writer, src string, mtime time.Time) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	h := &zip.FileHeader{Name: filepath.Base(src), Method: zip.Deflate, Modified: mtime}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	_, err = io.Copy(w, in)
	return err
}

func sortedByBase(files []string) []string {
	out := append([]string(nil), files...)
	sort.Slice(out, func(i, j int) bool { return filepath.Base(out[i]) < filepath.Base(out[j]) })
	return out
}
