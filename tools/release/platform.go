package main

import (
	"fmt"
	"strings"
)

type platform struct{ os, arch string }

func (p platform) String() string { return p.os + "/" + p.arch }

// binaryName is what the zip holds and what the catalog's -command names.
func (p platform) binaryName() string {
	if p.os == "windows" {
		return pluginName + ".exe"
	}
	return pluginName
}

// zipName follows releases.hashicorp.com, which drops the version's "v":
// vault-plugin-secrets-wetix_0.2.0_linux_amd64.zip.
func (p platform) zipName(version string) string {
	return fmt.Sprintf("%s_%s_%s_%s.zip", pluginName, strings.TrimPrefix(version, "v"), p.os, p.arch)
}

func parsePlatforms(s string) ([]platform, error) {
	var out []platform
	seen := map[platform]bool{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		os, arch, ok := strings.Cut(f, "/")
		if !ok || os == "" || arch == "" {
			return nil, fmt.Errorf("platform %q is not os/arch, like linux/amd64", f)
		}
		p := platform{os, arch}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no platforms given")
	}
	return out, nil
}
