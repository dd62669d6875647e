// Command wetix-check asks the WeTix sandbox what its docs leave open and
// the plugin had to assume, and prints a Markdown report, one line per
// question (docs/sandbox-check.md). Credentials come from the environment
// or files, never from flags (which show in `ps`), and never reach the
// report:
//
//	WETIX_CLIENT_ID                             sandbox client ID
//	WETIX_CLIENT_SECRET or WETIX_CLIENT_SECRET_FILE
//	WETIX_SIGNING_KEY_FILE                      optional: PEM private key WeTix holds the public half of
//	WETIX_CHECK_SESSION_KEY                     optional: a real order session key
//
// Exit status: 0 every answer is as assumed or harmless; 1 some answer
// differs or could not be had (the report says what to do); 2 bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/sandboxcheck"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wetix-check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	oauthURL := fs.String("oauth-url", sandboxcheck.SandboxOAuthURL, "WeTix OAuth base URL")
	graphqlURL := fs.String("graphql-url", sandboxcheck.SandboxGraphQLURL, "WeTix Open API GraphQL URL")
	allowProduction := fs.Bool("allow-production", false, "run against WeTix production (spends tokens, sends a wrong secret)")
	out := fs.String("out", "", "also write the report to this file")
	timeout := fs.Duration("timeout", 30*time.Second, "per-request timeout")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		// Not echoed: someone passing a secret as an argument would see it
		// copied into a terminal log.
		fmt.Fprintf(stderr, "wetix-check: %d unexpected argument(s): credentials come from the environment, not arguments (see -h)\n", fs.NArg())
		return 2
	}
	cfg, err := configFromEnv(getenv)
	if err != nil {
		fmt.Fprintln(stderr, "wetix-check:", err)
		return 2
	}
	cfg.OAuthURL, cfg.GraphQLURL, cfg.AllowProduction, cfg.Timeout = *oauthURL, *graphqlURL, *allowProduction, *timeout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := sandboxcheck.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "wetix-check:", err)
		return 2
	}
	var md strings.Builder
	rep.WriteMarkdown(&md)
	io.WriteString(stdout, md.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(md.String()), 0o600); err != nil {
			fmt.Fprintln(stderr, "wetix-check:", err)
			return 2
		}
	}
	if rep.NeedsAction() {
		return 1
	}
	return 0
}

func configFromEnv(getenv func(string) string) (sandboxcheck.Config, error) {
	cfg := sandboxcheck.Config{ClientID: strings.TrimSpace(getenv("WETIX_CLIENT_ID")), SessionKey: getenv("WETIX_CHECK_SESSION_KEY")}
	secret, file := getenv("WETIX_CLIENT_SECRET"), getenv("WETIX_CLIENT_SECRET_FILE")
	switch {
	case secret != "" && file != "":
		return cfg, fmt.Errorf("set WETIX_CLIENT_SECRET or WETIX_CLIENT_SECRET_FILE, not both")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("WETIX_CLIENT_SECRET_FILE: %w", err)
		}
		secret = strings.TrimSpace(string(b))
	}
	cfg.ClientSecret = secret
	if keyFile := getenv("WETIX_SIGNING_KEY_FILE"); keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return cfg, fmt.Errorf("WETIX_SIGNING_KEY_FILE: %w", err)
		}
		if cfg.SigningKey, err = sandboxcheck.ParseSigningKey(b); err != nil {
			return cfg, fmt.Errorf("WETIX_SIGNING_KEY_FILE %s: %w", keyFile, err)
		}
	}
	return cfg, nil
}
