package bench

import (
	"fmt"
	"strings"
)

// unleasedFloorGoal is issue 18's goal for the unleased read: at most this
// many times the unleased floor (the same data from a do-nothing plugin,
// without a lease) in the same run.
const unleasedFloorGoal = 1.1

// renderUnleased compares the unleased static-token read with KV v2, with
// the leased token read of the same token, and with its own floor.
func renderUnleased(w *strings.Builder, m matrix) {
	fmt.Fprintf(w, "\n**The unleased read** (wetix-static: GET /v1/wetix/static-token, the same cached token without a lease, so Vault writes nothing per read; "+
		"floor-unleased: the floor plugin answering the same data without a lease; time per read ratios as above; goal for wetix-static/floor-unleased: ≤ %.1f).\n\n", unleasedFloorGoal)
	fmt.Fprintf(w, "| clients | wetix-static/kv | wetix/kv | wetix/wetix-static (what the lease costs) | wetix-static/floor-unleased, per round | median | goal ≤ %.1f | p50 wetix-static/kv | floor-unleased/kv | floor/floor-unleased (a lease alone) |\n", unleasedFloorGoal)
	fmt.Fprintf(w, "|---:|---:|---:|---:|---|---:|---|---:|---:|---:|\n")
	for _, conc := range concurrencies {
		fl, st := m.perSec("floor-unleased", conc), m.perSec("wetix-static", conc)
		var per []string
		for i := range fl {
			per = append(per, fmt.Sprintf("%.2f", fl[i]/st[i]))
		}
		r := timeRatio(m, "wetix-static", "floor-unleased", conc)
		goal := "met"
		if r > unleasedFloorGoal {
			goal = "**not met**"
		}
		fmt.Fprintf(w, "| %d | %.2f | %.2f | %.2f | %s | %.2f | %s | %.2f | %.2f | %.2f |\n", conc,
			timeRatio(m, "wetix-static", "kv", conc), timeRatio(m, "wetix", "kv", conc), timeRatio(m, "wetix", "wetix-static", conc),
			strings.Join(per, " "), r, goal,
			lat(m, "wetix-static", conc, true)/lat(m, "kv", conc, true),
			timeRatio(m, "floor-unleased", "kv", conc), timeRatio(m, "floor", "floor-unleased", conc))
	}
	fmt.Fprintf(w, "\n%s\n", unleasedSummary(m))
}

// unleasedSummary is the line to read: the unleased read against KV, the
// leased read and its floor, at every concurrency.
func unleasedSummary(m matrix) string {
	var kv, lease, fl []string
	for _, conc := range concurrencies {
		kv = append(kv, fmt.Sprintf("%d: %.2f", conc, timeRatio(m, "wetix-static", "kv", conc)))
		lease = append(lease, fmt.Sprintf("%d: %.2f", conc, timeRatio(m, "wetix", "wetix-static", conc)))
		fl = append(fl, fmt.Sprintf("%d: %.2f", conc, timeRatio(m, "wetix-static", "floor-unleased", conc)))
	}
	return fmt.Sprintf("Time per read by clients, wetix-static/kv %s; wetix/wetix-static %s; wetix-static/floor-unleased %s.",
		strings.Join(kv, ", "), strings.Join(lease, ", "), strings.Join(fl, ", "))
}
