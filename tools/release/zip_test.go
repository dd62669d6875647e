package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The zip's bytes must not depend on the files' times, modes or the order
// they are given in: those differ between two checkouts of one commit.
func TestZipDependsOnlyOnContents(t *testing.T) {
	mtime := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	write := func(dir string, perm os.FileMode, when time.Time) (string, string) {
		a, b := filepath.Join(dir, "b-file"), filepath.Join(dir, "a-file")
		for _, f := range []string{a, b} {
			if err := os.WriteFile(f, []byte("contents of "+filepath.Base(f)), perm); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, perm); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(f, when, when); err != nil {
				t.Fatal(err)
			}
		}
		return a, b
	}
	d1, d2 := t.TempDir(), t.TempDir()
	a1, b1 := write(d1, 0o700, time.Now())
	a2, b2 := write(d2, 0o644, time.Now().Add(-48*time.Hour))
	z1, z2 := filepath.Join(d1, "1.zip"), filepath.Join(d2, "2.zip")
	if err := writeZip(z1, mtime, a1, b1); err != nil {
		t.Fatal(err)
	}
	if err := writeZip(z2, mtime, b2, a2); err != nil {
		t.Fatal(err)
	}
	x, y := readFile(t, z1), readFile(t, z2)
	if !bytes.Equal(x, y) {
		t.Fatal("the same contents zipped to different bytes")
	}
	zr, err := zip.NewReader(bytes.NewReader(x), int64(len(x)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 2 || zr.File[0].Name != "a-file" || zr.File[1].Name != "b-file" {
		t.Fatalf("entries %v, want a-file then b-file", zr.File)
	}
	for _, f := range zr.File {
		if !f.Modified.Equal(mtime) || f.Mode().Perm() != 0o755 {
			t.Errorf("%s: modified %s mode %s, want %s and 0755", f.Name, f.Modified, f.Mode(), mtime)
		}
	}
	if err := writeZip(z1, mtime.Add(time.Second), a1, b1); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(readFile(t, z1), x) {
		t.Fatal("another mtime gave the same bytes: the time is not in the zip")
	}
}

func TestVersionAndPlatformsAreChecked(t *testing.T) {
	for _, v := range []string{"0.2.0", "v0.2", "v0.2.x", "", "v0.2.0.1"} {
		if checkVersion(v) == nil {
			t.Errorf("version %q accepted", v)
		}
	}
	for _, v := range []string{"v0.2.0", "v1.10.3-rc.1"} {
		if err := checkVersion(v); err != nil {
			t.Errorf("version %q refused: %v", v, err)
		}
	}
	if _, err := parsePlatforms("linux"); err == nil {
		t.Error("platform without an arch accepted")
	}
	ps, err := parsePlatforms(DefaultPlatforms)
	if err != nil || len(ps) != 6 || ps[4].binaryName() != "vault-plugin-secrets-wetix.exe" || ps[0].zipName("v0.2.0") != "vault-plugin-secrets-wetix_0.2.0_linux_amd64.zip" {
		t.Fatalf("default platforms %v: %v", ps, err)
	}
}
