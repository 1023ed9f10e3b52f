package controlplane

import (
	"cmp"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// The agent pool (docs/scaling.md). Pool agents check in every PollInterval with what they run; the answer
// names unleased active connectors to take and, for an agent above its fair share while another has room,
// connectors to give back. Who runs a connector is still decided by the lease alone (AcquireLease is atomic,
// a refused lease is skipped), so two agents answered the same connector never both run it; the check-in
// only steers. The membership is in the store, so every replica balances over the same members.
//
// Fair share: active / members, capped by each member's --max-connectors, the remainder to the members that
// hold the most; connectors that the members below their share cannot absorb go to any member with capacity. Giving back only happens towards a member
// with room, so nothing bounces: an agent released to is one the next check-ins fill.

// maxPoolConnectors bounds --max-connectors.
const maxPoolConnectors = 10000

func (s *Server) poolCheckIn(w http.ResponseWriter, r *http.Request) error {
	var req api.PoolRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := text("host", req.Host, maxHost, true); err != nil {
		return err
	}
	if req.MaxConnectors < 1 || req.MaxConnectors > maxPoolConnectors {
		return invalid("max_connectors", "max_connectors is %d; it must be from 1 to %d", req.MaxConnectors, maxPoolConnectors)
	}
	if len(req.Running) > maxPoolConnectors {
		return invalid("running", "running has %d entries; the limit is %d", len(req.Running), maxPoolConnectors)
	}
	for i, id := range req.Running {
		if !store.ValidID(store.PrefixConnector, id) {
			return invalid("running["+strconv.Itoa(i)+"]", "%q is not a connector ID", truncate(id, 80))
		}
	}
	me := principalOf(r).agent
	ttl := max(s.cfg.LeaseTTL, 3*s.cfg.PoolInterval)
	view, err := s.cfg.Store.PoolCheckIn(r.Context(), store.PoolMember{AgentID: me.ID, Host: req.Host,
		MaxConnectors: req.MaxConnectors, Draining: req.Draining}, ttl)
	if err != nil {
		return err
	}
	if me.ConnectorID != "" {
		// An agent enrolled for one connector may lease that one only.
		view.Active = slices.DeleteFunc(view.Active, func(id string) bool { return id != me.ConnectorID })
	}
	take, release := balance(view, store.PoolHolder{AgentID: me.ID, Host: req.Host}, req)
	writeJSON(w, http.StatusOK, api.PoolAnswer{Take: take, Release: release, Members: max(1, liveMembers(view)),
		PollSeconds: s.cfg.PoolInterval.Seconds()})
	return nil
}

func liveMembers(v store.PoolView) int {
	n := 0
	for _, m := range v.Members {
		if !m.Draining {
			n++
		}
	}
	return n
}

// member is one pool agent as balance sees it.
type member struct {
	key        store.PoolHolder
	max, held  int
	share, gap int // share: what it should run; gap: share - held when positive
}

// balance computes what the asking agent (me, running req.Running) takes and releases.
func balance(v store.PoolView, me store.PoolHolder, req api.PoolRequest) (take, release []string) {
	take, release = []string{}, []string{}
	if req.Draining {
		return take, release
	}
	active := map[string]bool{}
	for _, id := range v.Active {
		active[id] = true
	}
	running := map[string]bool{}
	for _, id := range req.Running {
		if active[id] {
			running[id] = true
		}
	}
	members := poolMembers(v, me, req, len(running))
	var mine *member
	othersGap := 0
	for i := range members {
		if members[i].key == me {
			mine = &members[i]
		} else {
			othersGap += members[i].gap
		}
	}
	unleased := unleasedConnectors(v, running)
	room := mine.max - mine.held
	want := mine.gap
	if extra := len(unleased) - othersGap; extra > want {
		// More unleased work than the members below their share can take: whoever has capacity takes it.
		want = extra
	}
	if n := min(want, room, len(unleased)); n > 0 {
		take = unleased[:n]
	}
	if over := mine.held - mine.share; over > 0 && othersGap > 0 {
		ids := make([]string, 0, len(running))
		for id := range running {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		release = ids[:min(over, othersGap)]
	}
	return take, release
}

// poolMembers lists the live members that take work with their share. The shares add up to the active
// connectors (or to every member's maximum, when that is less): each gets active/members, a member whose
// maximum is below that gets its maximum and the rest is shared again, and the remainder goes one each to
// the members holding the most, so that balancing moves as little as possible.
func poolMembers(v store.PoolView, me store.PoolHolder, req api.PoolRequest, myHeld int) []member {
	held := map[store.PoolHolder]int{}
	for _, h := range v.Holders {
		held[h]++
	}
	var ms []member
	for _, m := range v.Members {
		k := store.PoolHolder{AgentID: m.AgentID, Host: m.Host}
		if m.Draining || k == me {
			continue
		}
		ms = append(ms, member{key: k, max: m.MaxConnectors, held: held[k]})
	}
	ms = append(ms, member{key: me, max: req.MaxConnectors, held: myHeld})
	// The most held first (then by key, the same order for every replica): they keep the remainder.
	slices.SortFunc(ms, func(a, b member) int {
		if a.held != b.held {
			return b.held - a.held
		}
		return cmp.Or(strings.Compare(a.key.AgentID, b.key.AgentID), strings.Compare(a.key.Host, b.key.Host))
	})
	shareOut(ms, len(v.Active))
	for i := range ms {
		ms[i].gap = max(0, ms[i].share-ms[i].held)
	}
	return ms
}

// shareOut sets the members' shares of n connectors (water-filling under each maximum).
func shareOut(ms []member, n int) {
	done := make([]bool, len(ms))
	left, open := n, len(ms)
	for open > 0 && left > 0 {
		per := left / open
		capped := false
		for i := range ms {
			if !done[i] && ms[i].max <= per {
				ms[i].share, done[i], capped = ms[i].max, true, true
				left -= ms[i].max
				open--
			}
		}
		if capped {
			continue
		}
		rem := left - per*open
		for i := range ms {
			if done[i] {
				continue
			}
			ms[i].share = per
			if rem > 0 && ms[i].max > per {
				ms[i].share++
				rem--
			}
		}
		return
	}
}

// unleasedConnectors lists the active connectors no live lease holds and the agent does not run, in a
// random order so that agents checking in at once mostly pick different ones.
func unleasedConnectors(v store.PoolView, running map[string]bool) []string {
	var out []string
	for _, id := range v.Active {
		if _, held := v.Holders[id]; !held && !running[id] {
			out = append(out, id)
		}
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// DefaultPoolInterval is how often pool agents check in.
const DefaultPoolInterval = 5 * time.Second
