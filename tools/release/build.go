package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

const (
	pluginName = "vault-plugin-secrets-wetix"
	module     = "github.com/wetix-oss/vault-plugin-secrets-wetix"
)

// build compiles the plugin for p into out/<os>_<arch>/ and returns the
// binary's path.
func build(p platform, version, out string) (string, error) {
	dir := filepath.Join(out, p.os+"_"+p.arch)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, p.binaryName())
	// -trimpath drops the checkout's path, -buildid= the build ID that
	// differs between machines; -s -w only shrink the file. -buildvcs=false
	// because the VCS stamp would make a release depend on the builder: on
	// whether the source is a git checkout, on its uncommitted files, and on
	// a GOFLAGS=-buildvcs=false in its environment (this machine has one);
	// the version stamp names the release instead.
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
		"-ldflags", fmt.Sprintf("-buildid= -s -w -X %s.Version=%s", module, version),
		"-o", bin, "./cmd/"+pluginName)
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS="+p.os, "GOARCH="+p.arch,
		// A builder's GOAMD64=v3 or GOARM64=v9.0 would change the bytes and
		// the machines the binary runs on; pin the baseline Go defaults to.
		"GOAMD64=v1", "GOARM64=v8.0",
		// The builder's GOFLAGS (-mod=mod, -tags=...) would change what is
		// built; a release is go.mod and go.sum as committed.
		"GOFLAGS=-mod=readonly",
	)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building for %s: %v", p, err)
	}
	return bin, nil
}
