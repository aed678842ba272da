package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/policy"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/state"
)

// policies holds the policy in force and its rules. A reload swaps both
// at once; a batch or job takes one snapshot and uses it throughout.
type policies struct {
	path string // "" or a preset name: no reloads
	cur  atomic.Pointer[policySnapshot]
	mod  time.Time
	log  *slog.Logger
	// state is what state keeps (from the policy at start): a policy
	// whose windows it cannot serve is refused.
	state state.Config
	// check says why state kept as state cannot serve a policy (jobs.Servable;
	// jobs.ShadowServable for a shadow policy).
	check func(state.Config, *policy.Policy) error
}

type policySnapshot struct {
	p     *policy.Policy
	rules *scoring.Rules
}

// loadPolicy reads a policy file, or a preset when spec names one
// (wechat, huabei, baitiao).
func loadPolicy(spec string) (*policySnapshot, error) {
	p, err := policy.Open(spec)
	if err != nil {
		return nil, err
	}
	rules, err := scoring.NewRules(p)
	if err != nil {
		return nil, err
	}
	return &policySnapshot{p: p, rules: rules}, nil
}

func newPolicies(spec string, log *slog.Logger) (*policies, error) {
	snap, err := loadPolicy(spec)
	if err != nil {
		return nil, err
	}
	ps := &policies{log: log, state: jobs.StateConfig(snap.p, nil), check: jobs.Servable}
	ps.cur.Store(snap)
	if st, err := os.Stat(spec); err == nil {
		ps.path, ps.mod = spec, st.ModTime()
	}
	return ps, nil
}

// newShadowPolicies loads a shadow policy: reloaded like the live one,
// and refused when it has the live one's version (its records would not
// say which policy decided what).
func newShadowPolicies(spec string, live *policies, log *slog.Logger) (*policies, error) {
	ps, err := newPolicies(spec, log.With("policy", "shadow"))
	if err != nil {
		return nil, err
	}
	// The two versions differ at start and after every reload of either:
	// a reload to the other's version is refused like any bad reload.
	sameVersion := func(other *policies, p *policy.Policy) error {
		if op, _ := other.get(); p.Version == op.Version {
			return fmt.Errorf("the shadow and the live policy would both have version %q: give the candidate a version of its own", p.Version)
		}
		return nil
	}
	ps.check = func(st state.Config, p *policy.Policy) error {
		return errors.Join(sameVersion(live, p), jobs.ShadowServable(st, p))
	}
	liveCheck := live.check
	live.check = func(st state.Config, p *policy.Policy) error {
		return errors.Join(sameVersion(ps, p), liveCheck(st, p))
	}
	sp, _ := ps.get()
	if err := sameVersion(live, sp); err != nil {
		return nil, err
	}
	return ps, nil
}

func (ps *policies) get() (*policy.Policy, *scoring.Rules) {
	s := ps.cur.Load()
	return s.p, s.rules
}

// reload loads the file again; a file that does not validate is refused
// and the policy in force stays.
func (ps *policies) reload(why string) {
	snap, err := loadPolicy(ps.path)
	if err == nil {
		err = ps.check(ps.state, snap.p)
	}
	if err != nil {
		ps.log.Error("policy reload refused; keeping the policy in force", "why", why, "path", ps.path,
			"version", ps.cur.Load().p.Version, "err", err)
		return
	}
	old := ps.cur.Swap(snap)
	ps.log.Info("policy reloaded", "why", why, "path", ps.path, "from", old.p.Version, "to", snap.p.Version)
}

// watch reloads on SIGHUP and when the file changes (polled every 2s)
// until ctx ends. A preset is not watched.
func (ps *policies) watch(ctx context.Context) error {
	// SIGHUP is always caught: Go's default for it is to exit, without a
	// graceful shutdown.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var tick <-chan time.Time // a preset: no file to poll
	if ps.path != "" {
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			if ps.path == "" {
				ps.log.Info("SIGHUP: the policy is a compiled-in preset; nothing to reload", "version", ps.cur.Load().p.Version)
				continue
			}
			ps.reload("SIGHUP")
		case <-tick:
			st, err := os.Stat(ps.path)
			if err != nil || st.ModTime().Equal(ps.mod) {
				continue
			}
			ps.mod = st.ModTime()
			ps.reload("file changed")
		}
	}
}
