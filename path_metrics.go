package wetix

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

func pathMetrics(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "metrics",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "wetix",
			OperationSuffix: "metrics",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathMetricsRead,
				Summary:  "The mount's health and refresh history in the Prometheus text format, without any secret.",
				Responses: map[int][]framework.Response{
					200: {{Description: "Prometheus text exposition format 0.0.4 (" + metricsContentType + ")", MediaType: "text/plain"}},
				},
			},
		},
		HelpSynopsis:    "Prometheus metrics of the WeTix credential, without any secret.",
		HelpDescription: metricsHelp(),
	}
}

// metricDef is one metric as documented: its HELP line, and the path help
// lists them all from the same table so the two cannot drift apart.
type metricDef struct {
	name   string
	typ    metricType
	labels string
	help   string
}

var (
	mConfigured = metricDef{"wetix_configured", gauge, "mount",
		"1 when config has been written, else 0 (and only this, wetix_healthy and wetix_token_reads have samples)."}
	mHealthy = metricDef{"wetix_healthy", gauge, "mount",
		"1 when a valid access token is held, or can be had, and the last refresh did not fail; the status path's advice says what to do when 0."}
	mRefreshDue = metricDef{"wetix_refresh_due", gauge, "mount",
		"1 when the next token read or periodic tick will refresh the access token."}
	mRefreshes = metricDef{"wetix_refreshes_total", counter, "mount, grant",
		`Successful refreshes since the config was created (a config delete resets it), by the OAuth grant used ("refresh_token" or "client_credentials").`}
	mFailures = metricDef{"wetix_refresh_failures_total", counter, "mount",
		"Refreshes that failed since the config was created (a config delete resets it; each failure after its retries)."}
	mFailuresByKind = metricDef{"wetix_refresh_failures_by_kind_total", counter, "mount, kind",
		"Refreshes that failed since the config was created (a config delete resets it), by the kind of failure (" + failureKindLabels() + "); failures recorded before v0.2.0 appear only in wetix_refresh_failures_total."}
	mFailing = metricDef{"wetix_refresh_failing", gauge, "mount, kind",
		"1 for the kind of the last refresh's failure while no refresh has succeeded since, else 0; one series per kind (" + failureKindLabels() + ")."}
	mLastFailure = metricDef{"wetix_last_refresh_failure_timestamp_seconds", gauge, "mount",
		"When the last refresh failed, in unix seconds; no sample before the first failure."}
	mStaleServes = metricDef{"wetix_stale_serves_total", counter, "mount",
		"Token reads answered with the current, due access token instead of a new one (WeTix unavailable, a new client_secret not accepted yet, or Vault's storage failing) since the config was created (a config delete resets it), as stored: a serve is counted within a minute, and the count never goes down while the config exists."}
	mStaleServesByReason = metricDef{"wetix_stale_serves_by_reason_total", counter, "mount, reason",
		"wetix_stale_serves_total by reason, since the config was created (a config delete resets it): " + staleReasonLabels() + "; serves counted before reasons were recorded (pre-release builds of v0.2.0) are reason=\"" + staleBeforeReasons + "\"."}
	mAccessLeft = metricDef{"wetix_access_token_remaining_seconds", gauge, "mount",
		"Seconds until the current access token expires (negative once expired); no sample while none is held."}
	mServedLeft = metricDef{"wetix_access_token_served_remaining_seconds", gauge, "mount",
		"Seconds until the current access token is no longer served if it cannot be replaced before then (status served_until: its expiry less the lease margin and one ttl; the instant before it is due for a token too short-lived to carry full ttl leases, or after a refusal); past it, token reads fail while WeTix is unavailable or rejects the client secret. Alert on this, not on the expiry. Negative once passed; no sample while none is held."}
	mRefreshLeft = metricDef{"wetix_refresh_token_remaining_seconds", gauge, "mount",
		"Seconds until the stored refresh token expires (negative once expired); no sample while none is held or WeTix gave no expiry."}
	mRefreshUsable = metricDef{"wetix_refresh_token_usable", gauge, "mount",
		"1 when the next refresh will use the refresh grant, 0 when it will fall back to the client-credentials grant."}
	mLastRefresh = metricDef{"wetix_last_refresh_timestamp_seconds", gauge, "mount",
		"When the last successful refresh ran, in unix seconds; no sample before the first."}
	mReads = metricDef{"wetix_token_reads", gauge, "mount, path",
		`Token reads this node answered since the plugin started, by path ("token": leased, "` + staticTokenPath + `": unleased); unlike the other metrics, counted in memory per node and never stored, so a gauge: it starts again from 0 when the plugin restarts or reloads (use rate over it only between restarts).`}

	// metricDefs is the exposition order.
	metricDefs = []metricDef{mConfigured, mHealthy, mRefreshDue, mRefreshes, mFailures, mFailuresByKind, mFailing, mLastFailure,
		mStaleServes, mStaleServesByReason, mAccessLeft, mServedLeft, mRefreshLeft, mRefreshUsable, mLastRefresh, mReads}
)

// failureKinds names the stored kinds of a failure (errorKind) for the kind
// label. Only the last failure's kind is stored, so the kinds are a state
// set, not counters; anything unknown, including entries written before the
// kind was stored, is "other".
var failureKinds = []struct{ stored, label string }{
	{client.KindTransient.String(), "transient"},
	{client.KindRejected.String(), "refresh_token_rejected"},
	{client.KindInvalidClient.String(), "invalid_client"},
	{client.KindUntrusted.String(), "tls_untrusted"},
	{client.KindPermanent.String(), "permanent"},
	{errorKind(&storageErr{}), "storage"},
	{errorKind(errors.New("")), "other"},
}

func failureKindLabel(stored string) string {
	for _, k := range failureKinds {
		if k.stored == stored {
			return k.label
		}
	}
	return "other"
}

func failureKindLabels() string {
	labels := make([]string, len(failureKinds))
	for i, k := range failureKinds {
		labels[i] = k.label
	}
	return strings.Join(labels, ", ")
}

func staleReasonLabels() string { return strings.Join(staleReasons, ", ") }

func metricsHelp() string {
	var sb strings.Builder
	sb.WriteString(strings.TrimSpace(metricsHelpIntro))
	sb.WriteString("\n\nMetrics (type; labels):\n")
	for _, d := range metricDefs {
		fmt.Fprintf(&sb, "\n  %s (%s; %s)\n      %s\n", d.name, d.typ, d.labels, d.help)
	}
	return sb.String()
}

const metricsHelpIntro = `
Answers in the Prometheus text exposition format (` + metricsContentType + `),
so Prometheus can scrape /v1/<mount>/metrics with a Vault token whose policy
grants read on <mount>/metrics. The values are computed at each scrape from
the same stored state as the status path, so every node of an HA cluster
answers the same; no secret is ever part of them. The mount label is the
mount's path as Vault names it (for example "wetix/").
`

func (d metricDef) family() *metricFamily {
	return &metricFamily{name: d.name, help: d.help, typ: d.typ}
}

func (b *backend) pathMetricsRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	families, err := b.metricFamilies(ctx, req.Storage, req.MountPoint)
	if err != nil {
		return nil, err
	}
	return &logical.Response{Data: map[string]interface{}{
		logical.HTTPStatusCode:  http.StatusOK,
		logical.HTTPContentType: metricsContentType,
		// []byte, not string: Vault base64-decodes a string body when it
		// happens to be valid base64.
		logical.HTTPRawBody: exposition(families),
	}}, nil
}

// metricFamilies reads what statusResponse reads, and nothing else: the
// config and the current token state, without refreshing, so a scrape never
// calls WeTix or writes storage and works on a standby.
func (b *backend) metricFamilies(ctx context.Context, storage logical.Storage, mountPoint string) ([]*metricFamily, error) {
	fam := make(map[string]*metricFamily, len(metricDefs))
	families := make([]*metricFamily, len(metricDefs))
	for i, d := range metricDefs {
		families[i] = d.family()
		fam[d.name] = families[i]
	}
	mount := metricLabel{"mount", mountPoint}

	cfg, err := b.configFor(ctx, storage)
	if err != nil {
		return nil, err
	}
	// Reads are counted whether or not a config exists now: one may have
	// been deleted after serving them, and a counter must not go back.
	for p := readPath(0); p < readPaths; p++ {
		fam[mReads.name].add(float64(b.reads.load(p)), mount, metricLabel{"path", readPathNames[p]})
	}
	if cfg == nil {
		fam[mConfigured.name].add(0, mount)
		fam[mHealthy.name].add(0, mount)
		return families, nil
	}
	st, err := b.tokens.current(ctx, storage, cfg)
	if err != nil {
		return nil, err
	}
	now := b.now()
	due := b.tokens.due(st, cfg)
	healthy, _ := healthOf(st, cfg, now, due)
	lastFailed := lastRefreshFailed(st)

	fam[mConfigured.name].add(1, mount)
	fam[mHealthy.name].add(boolValue(healthy), mount)
	fam[mRefreshDue.name].add(boolValue(due), mount)
	fam[mRefreshes.name].add(float64(st.Stats.RefreshGrants), mount, metricLabel{"grant", string(client.GrantRefresh)})
	fam[mRefreshes.name].add(float64(st.Stats.CredentialGrants), mount, metricLabel{"grant", string(client.GrantClientCredentials)})
	fam[mFailures.name].add(float64(st.Stats.Failures), mount)
	byKind := map[string]uint64{}
	for stored, n := range st.Stats.FailuresByKind {
		byKind[failureKindLabel(stored)] += n
	}
	for _, k := range failureKinds {
		fam[mFailuresByKind.name].add(float64(byKind[k.label]), mount, metricLabel{"kind", k.label})
	}
	failing := ""
	if lastFailed {
		failing = failureKindLabel(st.Stats.LastErrorKind)
	}
	for _, k := range failureKinds {
		fam[mFailing.name].add(boolValue(k.label == failing), mount, metricLabel{"kind", k.label})
	}
	if !st.Stats.LastErrorAt.IsZero() {
		fam[mLastFailure.name].add(unixSeconds(st.Stats.LastErrorAt), mount)
	}
	fam[mStaleServes.name].add(float64(staleServes(st)), mount)
	byReason := staleServesByReason(st)
	for _, reason := range append(staleReasons, staleBeforeReasons) {
		if n, ok := byReason[reason]; ok {
			fam[mStaleServesByReason.name].add(float64(n), mount, metricLabel{"reason", reason})
		}
	}
	if st.hasAccessToken() {
		fam[mAccessLeft.name].add(secondsUntil(st.AccessExpiresAt, now), mount)
		fam[mServedLeft.name].add(secondsUntil(reportedServedUntil(st, cfg), now), mount)
	}
	if st.RefreshToken != "" && !st.RefreshExpiresAt.IsZero() {
		fam[mRefreshLeft.name].add(secondsUntil(st.RefreshExpiresAt, now), mount)
	}
	fam[mRefreshUsable.name].add(boolValue(st.usableRefreshToken(now)), mount)
	if !st.Stats.LastRefreshAt.IsZero() {
		fam[mLastRefresh.name].add(unixSeconds(st.Stats.LastRefreshAt), mount)
	}
	return families, nil
}

// lastRefreshFailed is health's test: the last error is newer than the last
// success.
func lastRefreshFailed(st *tokenState) bool {
	return !st.Stats.LastErrorAt.IsZero() && st.Stats.LastErrorAt.After(st.Stats.LastRefreshAt)
}

// Whole seconds: the stored times come from WeTix's expires_in, which is in
// seconds, and a fraction would only add noise to every scrape.
// secondsUntil is whole seconds, rounded down: a time passed by a fraction
// of a second is already -1, never 0 (the HELP texts say "negative once
// passed").
func secondsUntil(t, now time.Time) float64 { return math.Floor(t.Sub(now).Seconds()) }
func unixSeconds(t time.Time) float64       { return float64(t.Unix()) }
