package wetix

import "sync/atomic"

// readPath names a token path for the reads-by-path metric.
type readPath int

const (
	readLeased readPath = iota
	readUnleased
	readPaths
)

// readPathNames are the path label values, the paths as an app reads them.
var readPathNames = [readPaths]string{readLeased: "token", readUnleased: staticTokenPath}

// readCounts counts the token reads this node answered since the plugin
// started. It is kept in memory and never stored: a storage write per read
// is the very cost the unleased path exists to avoid, and a Prometheus
// counter may restart from zero (rate() handles that).
type readCounts struct{ n [readPaths]atomic.Uint64 }

func (r *readCounts) count(p readPath)       { r.n[p].Add(1) }
func (r *readCounts) load(p readPath) uint64 { return r.n[p].Load() }
