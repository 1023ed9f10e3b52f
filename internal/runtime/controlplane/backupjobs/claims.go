package backupjobs

import (
	"context"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Several control-plane replicas (docs/scaling.md) share the store: each backup and restore is run by the
// replica holding its claim ("backup:<id>", "restore:<id>", store.Claims), renewed every third of ClaimTTL.
// A replica that stops renewing (it died, or cannot reach the database) loses its jobs when their claims
// expire: its own jobs stop (their context ends), and another replica's rescan takes unfinished backups over
// and marks restores left running as interrupted, within one ClaimTTL and one rescan. Without Claims (one
// control plane) every job is this process's.

// DefaultClaimTTL is how long a job's claim lives without renewal.
const DefaultClaimTTL = 30 * time.Second

// hold takes the named claim and keeps renewing it. It returns a context that ends when ctx does or the claim
// is lost, a release function, and false when another replica holds the claim.
func (m *Manager) hold(ctx context.Context, name string) (context.Context, func(), bool) {
	if m.cfg.Claims == nil {
		return ctx, func() {}, true
	}
	if _, ok, err := m.cfg.Claims.Claim(ctx, name, m.cfg.Holder, m.cfg.ClaimTTL); err != nil || !ok {
		if err != nil {
			m.log.Warn("claiming a job", "claim", name, "err", err)
		}
		return ctx, func() {}, false
	}
	jctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(m.cfg.ClaimTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-jctx.Done():
				return
			case <-t.C:
			}
			if _, ok, err := m.cfg.Claims.Claim(jctx, name, m.cfg.Holder, m.cfg.ClaimTTL); (err != nil || !ok) && jctx.Err() == nil {
				m.log.Error("lost the claim of a job: stopping it here (another replica takes it over)", "claim", name, "err", err)
				cancel()
				return
			}
		}
	}()
	return jctx, func() {
		cancel()
		<-done
		if err := m.cfg.Claims.ReleaseClaim(context.WithoutCancel(ctx), name, m.cfg.Holder); err != nil {
			m.log.Warn("releasing the claim of a job", "claim", name, "err", err)
		}
	}, true
}

// rescan takes over, every ClaimTTL, the jobs no replica holds: unfinished backups are resumed here, restores
// left running are marked interrupted.
func (m *Manager) rescan(ctx context.Context) {
	t := time.NewTicker(m.cfg.ClaimTTL)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.interruptOrphanedRestores(ctx)
		bs, err := m.cfg.Store.UnfinishedBackups(ctx)
		if err != nil {
			m.log.Warn("looking for backups no replica runs", "err", err)
			continue
		}
		for _, b := range bs {
			m.mu.Lock()
			_, mine := m.backups[b.ID]
			m.mu.Unlock()
			if !mine {
				m.launch(b) //nolint:contextcheck // runs only if its claim is free (another replica stopped running it), under the manager's context
			}
		}
	}
}

// interruptOrphanedRestores marks failed the running restores no live process holds (their claim is free).
func (m *Manager) interruptOrphanedRestores(ctx context.Context) {
	rs, err := m.cfg.Store.RunningRestores(ctx)
	if err != nil {
		m.log.Warn("looking for restores no replica runs", "err", err)
		return
	}
	for _, r := range rs {
		if m.cfg.Claims != nil {
			if _, ok, err := m.cfg.Claims.Claim(ctx, "restore:"+r.ID, m.cfg.Holder, m.cfg.ClaimTTL); err != nil || !ok {
				continue // running on a live replica (or unknown: looked at again on the next rescan)
			}
		}
		r.State, r.Error = api.RestoreFailed, "interrupted: the control plane stopped during the restore; run it again to resume from its last finished chunk"
		if err := m.cfg.Store.UpdateRestore(ctx, r); err != nil {
			m.log.Warn("marking an interrupted restore", "restore_id", r.ID, "err", err)
		}
		if m.cfg.Claims != nil {
			_ = m.cfg.Claims.ReleaseClaim(ctx, "restore:"+r.ID, m.cfg.Holder)
		}
	}
}
