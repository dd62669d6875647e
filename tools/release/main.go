// Command release builds the plugin for every platform Vault ships on and
// writes, into one directory, what an operator downloads: a zip per platform
// named the way HashiCorp names plugin releases, SHA256SUMS over the zips and
// SHA256SUMS.binaries over the bare binaries (the value `vault plugin register
// -sha256` takes). `make release` runs it; see docs/install.md.
//
// Two runs on the same commit give the same bytes, wherever the checkout
// lives: builds are -trimpath with no build ID, and the zips carry a fixed
// time and mode.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultPlatforms are the os/arch pairs HashiCorp publishes Vault for.
const DefaultPlatforms = "linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 freebsd/amd64"

func main() {
	version := flag.String("version", "", "the version to stamp, like v0.2.0")
	out := flag.String("out", "dist", "directory to write the artifacts into; must be empty or absent")
	platforms := flag.String("platforms", DefaultPlatforms, "os/arch pairs, separated by spaces or commas")
	epoch := flag.String("mtime", "", "Unix time stamped on every zip entry (SOURCE_DATE_EPOCH; make release passes the commit's time); empty means 1980-01-01")
	flag.Parse()

	mtime := zipEpoch
	if *epoch != "" {
		secs, err := strconv.ParseInt(*epoch, 10, 64)
		if err != nil {
			fail(fmt.Errorf("-mtime %q is not a Unix time: %v", *epoch, err))
		}
		mtime = time.Unix(secs, 0).UTC()
	}
	plats, err := parsePlatforms(*platforms)
	if err != nil {
		fail(err)
	}
	r := release{version: *version, out: *out, platforms: plats, mtime: mtime}
	if err := r.run(); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "release:", err)
	os.Exit(1)
}

type release struct {
	version   string
	out       string
	platforms []platform
	mtime     time.Time
}

func (r release) run() error {
	if err := checkVersion(r.version); err != nil {
		return err
	}
	if err := emptyDir(r.out); err != nil {
		return err
	}
	var zips, bins []string
	for _, p := range r.platforms {
		start := time.Now()
		bin, err := build(p, r.version, r.out)
		if err != nil {
			return err
		}
		zip := filepath.Join(r.out, p.zipName(r.version))
		if err := writeZip(zip, r.mtime, bin); err != nil {
			return err
		}
		zips, bins = append(zips, zip), append(bins, bin)
		fmt.Printf("%-14s %s (%s)\n", p, filepath.Base(zip), time.Since(start).Round(time.Second))
	}
	if err := writeSums(filepath.Join(r.out, "SHA256SUMS"), r.out, zips); err != nil {
		return err
	}
	if err := writeSums(filepath.Join(r.out, "SHA256SUMS.binaries"), r.out, bins); err != nil {
		return err
	}
	fmt.Printf("wrote %s: %d zips, SHA256SUMS, SHA256SUMS.binaries\n", r.out, len(zips))
	return nil
}

// emptyDir makes dir, refusing one with files in it: stale artifacts of
// another version would sit beside sums that do not list them.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err == nil && len(entries) > 0 {
		return fmt.Errorf("%s is not empty; remove it first (make release does)", dir)
	}
	return os.MkdirAll(dir, 0o755)
}

func checkVersion(v string) error {
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	parts := strings.Split(core, ".")
	ok := strings.HasPrefix(v, "v") && len(parts) == 3
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("version %q is not a semantic version like v0.2.0 (Vault refuses others at registration)", v)
	}
	return nil
}
