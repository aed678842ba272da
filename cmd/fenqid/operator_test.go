package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/internal/testenv"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/producers"
	"github.com/fenqi/fenqi/scoring/credit"
)

// The write routes answer 202 with the operator event they published,
// and what the pipeline applies from it.
func TestOperatorEventsAccepted(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	expires := adminNow.Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	grant := `{"quota_fen":0,"reason":"fraud review","expires_at":"` + expires.Format(time.RFC3339) + `"}`
	ids := map[string]bool{}
	for _, c := range []struct {
		method, path, body, action string
		grant, cleared             bool
	}{
		{http.MethodPut, "/v1/users/u-ev/override", grant, events.OperatorSetOverride, true, false},
		{http.MethodDelete, "/v1/users/u-ev/override", "", events.OperatorClearOverride, false, true},
		{http.MethodPut, "/v1/users/u-ev/special-quota", grant, events.OperatorSetSpecial, true, false},
		{http.MethodDelete, "/v1/users/u-ev/special-quota", "", events.OperatorClearSpecial, false, true},
	} {
		status, body := e.send(t, c.method, c.path, writeAuth, c.body)
		var acc accepted
		if status != http.StatusAccepted || json.Unmarshal([]byte(body), &acc) != nil {
			t.Fatalf("%s %s: %d %s", c.method, c.path, status, body)
		}
		if !strings.HasPrefix(acc.EventID, "op-") || ids[acc.EventID] || acc.Topic != events.TopicOperator || acc.UserID != "u-ev" ||
			acc.Action != c.action || acc.Operator != "ops-li" || acc.Cleared != c.cleared {
			t.Errorf("%s %s: %+v", c.method, c.path, acc)
		}
		if c.grant && (acc.QuotaFen == nil || *acc.QuotaFen != 0 || acc.Reason != "fraud review" || acc.ExpiresAt == nil || !acc.ExpiresAt.Equal(expires)) {
			t.Errorf("%s %s: the grant %+v", c.method, c.path, acc)
		}
		ids[acc.EventID] = true
	}
}

// An event the pipeline would dead-letter is refused by the API with the
// decoder's reason; without a writer of the operator topic, 503.
func TestOperatorEventsRefused(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	long := strings.Repeat("u", events.MaxIDBytes+1)
	grant := `{"quota_fen":1,"reason":"r","expires_at":"2030-01-01T00:00:00Z"}`
	if status, body := e.send(t, http.MethodPut, "/v1/users/"+long+"/override", writeAuth, grant); status != http.StatusBadRequest ||
		!strings.Contains(body, `field \"subject\": must be at most 128 bytes long`) {
		t.Errorf("a user id over the limit: %d %s", status, body)
	}
	tooLong := `{"quota_fen":1,"reason":"` + strings.Repeat("r", events.MaxIDBytes+1) + `","expires_at":"2030-01-01T00:00:00Z"}`
	if status, body := e.send(t, http.MethodPut, "/v1/users/u-x/special-quota", writeAuth, tooLong); status != http.StatusBadRequest ||
		!strings.Contains(body, `field \"data.reason\"`) {
		t.Errorf("a reason over the limit: %d %s", status, body)
	}
	if status, body := e.send(t, http.MethodPut, "/v1/users/u-x/override", writeAuth, `{"quota_fen":1,"reason":"r","expires_at":"2040-01-01T00:00:00Z"}`); status != http.StatusBadRequest ||
		!strings.Contains(body, "the latest time") {
		t.Errorf("an expiry beyond 2038: %d %s", status, body)
	}
	e.admin.ops = nil
	if status, body := e.send(t, http.MethodDelete, "/v1/users/u-x/override", writeAuth, ""); status != http.StatusServiceUnavailable {
		t.Errorf("no writer: %d %s", status, body)
	}
	if u, err := e.store.User(context.Background(), "u-x"); err != nil || u.Override != nil || u.Special != nil {
		t.Errorf("refused writes changed the state: %+v, %v", u, err)
	}
}

// The quota check's answer counts the check it submits: the same
// evaluation as a GET once the check is applied.
func TestQuotaCheckCountsItself(t *testing.T) {
	t.Parallel()
	e := newAdmin(t, testenv.Redis(t), nil)
	e.apply(t, history("u-qc", adminNow))
	checks := func(r credit.Result) int {
		for _, f := range r.Factors {
			if f.Name == "quota_checks" {
				return int(f.Raw)
			}
		}
		t.Fatalf("no quota_checks factor in %+v", r.Factors)
		return 0
	}
	for i := 1; i <= 6; i++ {
		status, body := e.send(t, http.MethodPost, "/v1/users/u-qc/quota/check", writeAuth, "")
		var v struct {
			quotaBody
			Check accepted `json:"check"`
		}
		if status != http.StatusAccepted || json.Unmarshal([]byte(body), &v) != nil {
			t.Fatalf("check %d: %d %s", i, status, body)
		}
		if v.Check.Action != events.OperatorQuotaCheck || v.Check.EventID == "" || v.Check.QuotaFen != nil {
			t.Fatalf("check %d: the event %+v", i, v.Check)
		}
		after := e.quota(t, "u-qc").Evaluation
		if n := checks(v.Evaluation); n != i || checks(after) != i {
			t.Fatalf("check %d: answered with %d checks counted, the state then has %d", i, n, checks(after))
		}
		if v.Evaluation.Score != after.Score || v.Evaluation.QuotaFen != after.QuotaFen {
			t.Fatalf("check %d: answered score %v quota %d, then %v %d", i, v.Evaluation.Score, v.Evaluation.QuotaFen, after.Score, after.QuotaFen)
		}
	}
}

// End to end over a broker (kfake): an override PUT through the API is
// published to the operator topic, applied by a real pipeline, and the
// recompute it makes due publishes the override's quota.
func TestOperatorTopicEndToEnd(t *testing.T) {
	t.Parallel()
	topics := append(consumers.DefaultTopics().List(), events.TopicDecisions, events.TopicDLQ)
	kafka := testenv.Kafka(t, topics...)
	e := newAdmin(t, testenv.Redis(t), kafka.Addrs())
	e.apply(t, history("u-e2e", adminNow))

	ops := newOperatorWriter(kafka.Addrs(), nil, events.TopicOperator, nil)
	t.Cleanup(func() { _ = ops.Close() })
	e.admin.ops = ops
	pub, err := producers.New(producers.Config{Brokers: kafka.Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	pols := e.admin.policies
	pipe, err := consumers.New(consumers.Config{Brokers: kafka.Addrs(), Now: e.clock.Now}, e.store,
		func() consumers.Rules { _, r := pols.get(); return r }, pub, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runner, err := jobs.New(jobs.Config{Now: e.clock.Now, Interval: 20 * time.Millisecond}, e.store, pub, pols.get, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{pipe.Run, runner.Run} {
		wg.Go(func() {
			if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })

	// quotas are the quota decisions on the topic: the quota and what decided it.
	type quota struct {
		QuotaFen  int64  `json:"quota_fen"`
		DecidedBy string `json:"decided_by"`
	}
	quotas := func() []quota {
		var out []quota
		for _, m := range testenv.ReadAll(t, kafka.Addrs(), events.TopicDecisions) {
			d, err := events.DecodeDecision(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			var q quota
			detail, _ := d.Data.Detail.(json.RawMessage)
			if d.Type == events.TypeDecisionQuota && d.Subject == "u-e2e" && json.Unmarshal(detail, &q) == nil {
				out = append(out, q)
			}
		}
		return out
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	eventually("the first quota", func() bool { return len(quotas()) == 1 })
	if q := quotas()[0]; q.DecidedBy == credit.DecidedOverride || q.QuotaFen == 1_234_500 {
		t.Fatalf("the first quota %+v", q)
	}

	expires := adminNow.Add(10 * 24 * time.Hour).UTC().Format(time.RFC3339)
	status, body := e.send(t, http.MethodPut, "/v1/users/u-e2e/override", writeAuth,
		`{"quota_fen":1234500,"reason":"manual review","expires_at":"`+expires+`"}`)
	var acc accepted
	if status != http.StatusAccepted || json.Unmarshal([]byte(body), &acc) != nil {
		t.Fatalf("PUT override: %d %s", status, body)
	}
	// On the operator topic, keyed by the user.
	recs := testenv.ReadAll(t, kafka.Addrs(), events.TopicOperator)
	if len(recs) != 1 || string(recs[0].Key) != "u-e2e" {
		t.Fatalf("operator topic: %d records (%v)", len(recs), recs)
	}
	got, err := events.Decoder{Now: e.clock.Now}.Decode(recs[0].Key, nil, recs[0].Value)
	if err != nil || got.ID != acc.EventID || got.Op == nil || got.Op.Action != events.OperatorSetOverride || got.Op.Operator != "ops-li" {
		t.Fatalf("operator record %+v, %v", got, err)
	}
	// Applied by the pipeline; the recompute it made due publishes the override.
	eventually("the override in state", func() bool {
		u, err := e.store.User(context.Background(), "u-e2e")
		return err == nil && u.Override != nil && u.Override.QuotaFen == 1_234_500 && u.Override.Operator == "ops-li"
	})
	eventually("the override's quota decision", func() bool {
		qs := quotas()
		return len(qs) == 2 && qs[1] == quota{QuotaFen: 1_234_500, DecidedBy: credit.DecidedOverride}
	})
	if s := pipe.Stats(); s.DeadLetters.Load() != 0 || s.Applied.Load() != 1 {
		t.Fatalf("pipeline: %d applied, %d dead letters", s.Applied.Load(), s.DeadLetters.Load())
	}

	// Cleared the same way: the model decides again.
	if status, body := e.send(t, http.MethodDelete, "/v1/users/u-e2e/override", writeAuth, ""); status != http.StatusAccepted {
		t.Fatalf("DELETE override: %d %s", status, body)
	}
	eventually("the quota after the clear", func() bool {
		qs := quotas()
		return len(qs) == 3 && qs[2].DecidedBy != credit.DecidedOverride
	})
}
