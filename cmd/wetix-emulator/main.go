// Command wetix-emulator serves the wetixtest WeTix OAuth emulator on a port,
// for `make dev` and scripts that need a WeTix without the internet. Drive it
// through its /_emulator/ admin API (see package wetixtest).
//
// It is a test tool with fixed, public default credentials, so it refuses to
// listen beyond loopback unless -allow-remote is given.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("wetix-emulator: ")
	if err := run(os.Args[1:]); err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("wetix-emulator", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8089", "listen address")
	clientID := fs.String("client-id", "test-client-id", "accepted client ID")
	clientSecret := fs.String("client-secret", "test-client-secret", "accepted client secret")
	accessTTL := fs.Duration("access-ttl", 60*24*time.Hour, "access token lifetime")
	refreshTTL := fs.Duration("refresh-ttl", 365*24*time.Hour, "refresh token lifetime")
	reuse := fs.Bool("allow-refresh-reuse", false, "accept a refresh token more than once")
	revoke := fs.Bool("revoke-access-on-refresh", false, "a successful refresh kills every earlier access token")
	revokeOnCC := fs.Bool("revoke-on-client-credentials", false, "a client-credentials grant kills every earlier access and refresh token")
	rule := fs.String("canonical-rule", "go", `how /graphql rebuilds the signed JSON: "go" (encoding/json, as WeTix's Go server) or "literal" (the app's characters and number text)`)
	allowRemote := fs.Bool("allow-remote", false, "allow a non-loopback listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if !*allowRemote && !isLoopback(*addr) {
		return fmt.Errorf("refusing to listen on %q: not a loopback address (use -allow-remote)", *addr)
	}

	s, err := wetixtest.Start(wetixtest.Options{
		ClientID:                  *clientID,
		ClientSecret:              *clientSecret,
		AccessTTL:                 *accessTTL,
		RefreshTTL:                *refreshTTL,
		AllowRefreshReuse:         *reuse,
		RevokeAccessOnRefresh:     *revoke,
		RevokeOnClientCredentials: *revokeOnCC,
		Addr:                      *addr,
		OnRequest:                 logRequest,
	})
	if err != nil {
		return err
	}
	if err := s.SetCanonicalRule(wetixtest.CanonicalRule(*rule)); err != nil {
		s.Close()
		return err
	}
	log.Printf("listening on %s (client id %q, access ttl %s, refresh ttl %s)", s.URL(), *clientID, *accessTTL, *refreshTTL)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	log.Print("shutting down")
	s.Close()
	return nil
}

// logRequest prints only what RequestInfo carries, which by design holds no
// secret or token.
func logRequest(ri wetixtest.RequestInfo) {
	status := fmt.Sprint(ri.Status)
	if ri.Status == 0 {
		status = "no-answer"
	}
	line := fmt.Sprintf("%s %s %s", ri.Method, ri.Path, status)
	if ri.Grant != "" {
		line += " grant=" + string(ri.Grant)
	}
	if ri.Fault != "" {
		line += " fault=" + ri.Fault
	}
	log.Printf("%s %s", line, ri.Duration.Round(time.Microsecond))
}

// isLoopback accepts loopback IPs and "localhost". An empty host means every
// interface, so it is not loopback.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
