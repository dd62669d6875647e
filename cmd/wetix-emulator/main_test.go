package main

import "testing"

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	for addr, want := range map[string]bool{
		"127.0.0.1:8089": true,
		"127.0.0.2:0":    true,
		"[::1]:8089":     true,
		"localhost:8089": true,
		":8089":          false,
		"0.0.0.0:8089":   false,
		"[::]:8089":      false,
		"10.0.0.5:8089":  false,
		"example.com:80": false,
		"127.0.0.1":      false, // no port: not a listen address
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestRefusesRemote(t *testing.T) {
	t.Parallel()
	if err := run([]string{"-addr", "0.0.0.0:0"}); err == nil {
		t.Fatal("run listened on 0.0.0.0 without -allow-remote")
	}
}
