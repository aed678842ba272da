package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/fenqi/fenqi/consumers"
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/jobs"
	"github.com/fenqi/fenqi/scoring"
	"github.com/fenqi/fenqi/scoring/credit"
	"github.com/fenqi/fenqi/state"
	"github.com/fenqi/fenqi/state/engine"
)

// admin is the admin listener: health, readiness and the explanation API.
type admin struct {
	log      *slog.Logger
	rdb      redis.UniversalClient
	brokers  []string
	store    *state.Store
	policies *policies
	now      func() time.Time
	metrics  http.Handler // /metrics; nil = not served
	// assigned (may be nil) tells whether the consumer group has input
	// partitions assigned; readiness waits for it.
	assigned func() (bool, string)
	// topics are the input topics as fenqid consumes them (zero: the
	// defaults): /v1/epochs names them, and maps a name to the state's
	// topic index (its position in Topics.List, from 1).
	topics consumers.Topics
	// conf is the listener's tokens, TLS, timeouts and caps (handler and
	// serve read it once).
	conf adminConfig
	// ops publishes the operator events of the write routes (overrides,
	// special quotas, quota checks) to the operator topic, from which the
	// pipeline applies them like any event (nil: those routes answer 503).
	// Submit returns once the event is durably accepted (acknowledged by
	// the broker); it is called concurrently.
	ops interface {
		Submit(ctx context.Context, e events.Event) error
	}
}

// handler routes the admin listener. /healthz, /readyz and /metrics are
// open; every /v1 route needs a bearer token (see authenticate), and those
// that change state a write token (see writer). Request bodies are capped
// at conf.MaxBodyBytes.
func (a *admin) handler() http.Handler {
	if a.now == nil {
		a.now = time.Now
	}
	auth, err := a.conf.auth()
	if err != nil { // validated with the settings: fail closed
		a.log.Error("admin tokens", "err", err)
		auth = adminAuth{}
	}
	v1 := http.NewServeMux()
	v1.HandleFunc("GET /v1/users/{id}/quota", a.quota)
	v1.HandleFunc("POST /v1/users/{id}/quota/check", a.writer(a.checkQuota))
	v1.HandleFunc("GET /v1/users/{id}/offer", a.offer)
	v1.HandleFunc("PUT /v1/users/{id}/override", a.writer(a.setOverride))
	v1.HandleFunc("DELETE /v1/users/{id}/override", a.writer(a.clearOverride))
	v1.HandleFunc("PUT /v1/users/{id}/special-quota", a.writer(a.setSpecial))
	v1.HandleFunc("DELETE /v1/users/{id}/special-quota", a.writer(a.clearSpecial))
	v1.HandleFunc("POST /v1/recompute", a.writer(a.recomputeAll))
	v1.HandleFunc("GET /v1/epochs", a.epochs)
	v1.HandleFunc("POST /v1/epochs/{topic}", a.writer(a.raiseEpoch))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", a.ready)
	if a.metrics != nil {
		mux.Handle("GET /metrics", a.metrics)
	}
	mux.Handle("/v1/", a.authenticate(auth, v1))
	maxBody := a.conf.MaxBodyBytes
	if maxBody <= 0 {
		maxBody = defaultAdminConfig().MaxBodyBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		mux.ServeHTTP(w, r)
	})
}

// principal is who made a request: a token's holder, or anonymous when
// the API is open (-admin-insecure without a token).
type principal struct {
	name  string
	write bool
}

type principalKey struct{}

// caller is the principal of a request that passed authenticate.
func caller(r *http.Request) principal {
	p, _ := r.Context().Value(principalKey{}).(principal)
	return p
}

// authenticate lets through the requests whose Authorization header is
// "Bearer <token>" with one of auth's tokens (compared in constant time,
// every token each time), with the token's holder in the context. Any
// other request is answered 401 with WWW-Authenticate: Bearer, and so is
// every request when no token is configured, unless the API is open.
func (a *admin) authenticate(auth adminAuth, next http.Handler) http.Handler {
	const realm = `Bearer realm="fenqid admin"`
	refuse := func(w http.ResponseWriter, challenge, msg string) {
		w.Header().Set("WWW-Authenticate", challenge)
		httpError(w, http.StatusUnauthorized, errors.New(msg))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if auth.open {
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{name: anonymousName, write: true})))
			return
		}
		if len(auth.tokens) == 0 {
			refuse(w, realm, "the admin API is locked: fenqid has no admin token. Set FENQI_ADMIN_TOKEN or FENQI_ADMIN_TOKEN_FILE "+
				"(and FENQI_ADMIN_READ_TOKEN[_FILE] for read-only clients), or -admin-insecure if the network protects the listener")
			return
		}
		scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		tok = strings.TrimLeft(tok, " ")
		if !strings.EqualFold(scheme, "Bearer") || tok == "" {
			refuse(w, realm, "this route needs the header Authorization: Bearer <token> (fenqictl: FENQI_ADMIN_TOKEN or --admin-token-file)")
			return
		}
		sum := sha256.Sum256([]byte(tok))
		found := -1
		for i := range auth.tokens {
			if subtle.ConstantTimeCompare(sum[:], auth.tokens[i].sum[:]) == 1 {
				found = i
			}
		}
		if found < 0 {
			refuse(w, realm+`, error="invalid_token"`, "the bearer token is not one of fenqid's admin tokens")
			return
		}
		t := auth.tokens[found]
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, principal{name: t.name, write: t.write})))
	})
}

// writer wraps a handler that changes state: a read-only token is
// answered 403.
func (a *admin) writer(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if p := caller(r); !p.write {
			w.Header().Set("WWW-Authenticate", `Bearer realm="fenqid admin", error="insufficient_scope"`)
			httpError(w, http.StatusForbidden, fmt.Errorf("%s holds a read-only token: this route changes state and needs a write token (FENQI_ADMIN_TOKEN)", p.name))
			return
		}
		h(w, r)
	}
}

// ready answers 200 when Redis and a Kafka broker answer.
func (a *admin) ready(w http.ResponseWriter, r *http.Request) {
	// Each check bounded, so that the whole answer comes within Kubernetes'
	// default 1 s probe timeout whatever go-redis's retries do.
	var problems []string
	rctx, cancel := context.WithTimeout(r.Context(), 400*time.Millisecond)
	defer cancel()
	if err := a.rdb.Ping(rctx).Err(); err != nil {
		problems = append(problems, "redis: "+err.Error())
	}
	kctx, kcancel := context.WithTimeout(r.Context(), 400*time.Millisecond)
	defer kcancel()
	conn, err := (&net.Dialer{}).DialContext(kctx, "tcp", a.brokers[0])
	if err != nil {
		problems = append(problems, "kafka: "+err.Error())
	} else {
		_ = conn.Close()
	}
	if a.assigned != nil {
		if ok, why := a.assigned(); !ok {
			problems = append(problems, "kafka: "+why)
		}
	}
	if len(problems) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		for _, p := range problems {
			_, _ = io.WriteString(w, p+"\n")
		}
		return
	}
	_, _ = io.WriteString(w, "ready\n")
}

// quotaView is the body of GET /v1/users/{id}/quota: the quota a recompute
// would give now, with its whole breakdown, and the last published one.
type quotaView struct {
	UserID            string `json:"user_id"`
	PublishedQuotaFen *int64 `json:"published_quota_fen"`
	// NextRecomputeAt is when the quota is next recomputed (null: the user
	// was never seen).
	NextRecomputeAt *time.Time    `json:"next_recompute_at"`
	Evaluation      credit.Result `json:"evaluation"`
	// Pools are each quota pool's limit (the published quota for the
	// main line), outstanding principal and available quota.
	Pools []scoring.PoolView `json:"pools"`
}

// quota explains a user's quota; it never writes. A quota check (which
// counts) is POST .../quota/check: a GET naming one is refused, so that a
// client still sending the old ?check=1 learns it was not counted.
func (a *admin) quota(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("check") {
		httpError(w, http.StatusBadRequest, errors.New("a GET never counts a quota check: "+
			"POST /v1/users/{id}/quota/check (with a write token) counts the user's check and answers the same body"))
		return
	}
	a.explain(w, r)
}

// checkView is the 202 body of POST /v1/users/{id}/quota/check: the
// quotaView with this check counted, and the event that counts it.
type checkView struct {
	quotaView
	Check accepted `json:"check"`
}

// checkQuota counts a quota check of the user (the app's "check my
// quota": repeated checks within 30 days lower the score; an operator's
// explanation, GET .../quota, is not counted): it answers the explanation
// of the state read now with this check counted, and publishes the check
// to the operator topic, from which the pipeline applies it (202).
func (a *admin) checkQuota(w http.ResponseWriter, r *http.Request) {
	now := a.now()
	v, err := a.view(r.Context(), r.PathValue("id"), now, true)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	acc, ok := a.submit(w, r, events.Operator{Action: events.OperatorQuotaCheck}, now)
	if !ok {
		return
	}
	writeJSONStatus(w, http.StatusAccepted, checkView{quotaView: v, Check: acc})
}

// explain answers a quotaView of the user in the path.
func (a *admin) explain(w http.ResponseWriter, r *http.Request) {
	v, err := a.view(r.Context(), r.PathValue("id"), a.now(), false)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	writeJSON(w, v)
}

// view explains user id's quota at now, with a quota check at now counted
// as well when check is set (one being submitted).
func (a *admin) view(ctx context.Context, id string, now time.Time, check bool) (quotaView, error) {
	p, _ := a.policies.get()
	u, err := a.store.User(ctx, id)
	if err != nil {
		return quotaView{}, err
	}
	if check { // as the engine records it: newest first, the latest MaxQuotaChecks
		u.QuotaChecks = append([]time.Time{now}, u.QuotaChecks...)
		u.QuotaChecks = u.QuotaChecks[:min(len(u.QuotaChecks), engine.MaxQuotaChecks)]
	}
	res := credit.Evaluate(p, jobs.Facts(u, p, now))
	v := quotaView{UserID: id, Evaluation: res, Pools: jobs.PoolViews(u, u.QuotaFen, now)}
	if u.HasQuota {
		v.PublishedQuotaFen = &u.QuotaFen
	}
	next, ok, err := a.store.NextRecompute(ctx, id, jobs.CycleOf(p))
	if err != nil {
		return quotaView{}, err
	}
	if ok {
		v.NextRecomputeAt = &next
	}
	return v, nil
}

// OperatorSource is the CloudEvents source of the operator events the
// admin API writes.
const OperatorSource = "fenqi/admin"

// accepted is the 202 answer of a write route: the operator event
// published to the operator topic, and what the pipeline will apply from
// it (the grant of a set_*, or cleared).
type accepted struct {
	EventID  string `json:"event_id"`
	Topic    string `json:"topic"`
	UserID   string `json:"user_id"`
	Action   string `json:"action"`
	Operator string `json:"operator"`
	// The grant set (set_override, set_special).
	QuotaFen  *int64     `json:"quota_fen,omitempty"`
	Reason    string     `json:"reason,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Cleared   bool       `json:"cleared,omitempty"` // clear_override, clear_special
}

// newOperatorEventID is a fresh, unique event id: "op-" and 16 random
// bytes in hex.
func newOperatorEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return "op-" + hex.EncodeToString(b[:])
}

// submit publishes op, of the user in the path, by the request's
// principal, at now, to the operator topic. An event the pipeline would
// refuse (a user id too long, a text over the limits) is answered 400
// with the decoder's reason, a failed publish 503; ok reports that the
// event was accepted.
func (a *admin) submit(w http.ResponseWriter, r *http.Request, op events.Operator, now time.Time) (_ accepted, ok bool) {
	id := r.PathValue("id")
	op.UserID, op.Operator = id, caller(r).name
	e := events.Event{ID: newOperatorEventID(), Type: events.TypeOperator, Source: OperatorSource, Subject: id, Time: now.UTC(), Op: &op}
	// What the pipeline will read: refused here rather than dead-lettered there.
	value, err := events.Marshal(e)
	if err == nil {
		e, err = events.Decoder{Now: func() time.Time { return now }}.Decode([]byte(id), nil, value)
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("the operator event would be refused: %w", err))
		return accepted{}, false
	}
	if a.ops == nil {
		httpError(w, http.StatusServiceUnavailable, errors.New("this fenqid writes no operator events (no operator topic writer)"))
		return accepted{}, false
	}
	if err := a.ops.Submit(r.Context(), e); err != nil {
		httpError(w, http.StatusServiceUnavailable, fmt.Errorf("publish the operator event: %w", err))
		return accepted{}, false
	}
	topic := a.topics.Operator
	if topic == "" {
		topic = events.TopicOperator
	}
	acc := accepted{EventID: e.ID, Topic: topic, UserID: id, Action: op.Action, Operator: op.Operator}
	switch {
	case events.OperatorGrants(op.Action):
		acc.QuotaFen, acc.Reason, acc.ExpiresAt = &e.Op.QuotaFen, e.Op.Reason, &e.Op.ExpiresAt
	case op.Action != events.OperatorQuotaCheck:
		acc.Cleared = true
	}
	return acc, true
}

// offerRefusalView is the 422 body of GET /v1/users/{id}/offer: why the
// purchase is refused (every code with its advice), beside the user's quota.
type offerRefusalView struct {
	credit.OfferRefusal
	QuotaFen int64 `json:"quota_fen"` // the user's quota (evaluation.quota_fen)
}

// offer prices a credit purchase for a user and refuses it as the payment
// rules would (credit.MakeOffer): not eligible, refused by the scene (pay
// score, single-payment limit) or above the available quota: 422 with the
// reason codes. 1 period is pay later: fee 0 and the due date, the
// purchase being made now.
func (a *admin) offer(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	amount, err := strconv.ParseInt(q.Get("amount_fen"), 10, 64)
	if err != nil || amount <= 0 {
		httpError(w, http.StatusBadRequest, fmt.Errorf("amount_fen must be a positive integer, got %q", q.Get("amount_fen")))
		return
	}
	periods, err := strconv.Atoi(q.Get("periods"))
	if err != nil {
		httpError(w, http.StatusBadRequest, fmt.Errorf("periods must be an integer, got %q", q.Get("periods")))
		return
	}
	scene := events.Scene(q.Get("scene"))
	if scene != "" && !scene.Valid() {
		httpError(w, http.StatusBadRequest, fmt.Errorf("scene %q is not a known scene", scene))
		return
	}
	p, _ := a.policies.get()
	if !p.Pricing.Offers(periods) {
		httpError(w, http.StatusBadRequest, fmt.Errorf("%d periods are not offered by the %s policy (it offers %v)",
			periods, p.Product, p.Pricing.PeriodsOffered()))
		return
	}
	now := a.now()
	res, u, err := jobs.Explain(r.Context(), a.store, p, r.PathValue("id"), now)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	// The verdict the payment rules would give the purchase (jobs.CreditCheck).
	req := jobs.JudgePurchase(p, u, scene, amount, now).Request
	req.Periods = periods
	req.Context.MerchantID = q.Get("merchant_id")
	req.Context.NewUser, req.Context.Invited = q.Get("new_user") == "true", q.Get("invited") == "true"
	offer, err := credit.MakeOffer(p, req)
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	if !offer.Accepted {
		writeJSONStatus(w, http.StatusUnprocessableEntity, offerRefusalView{OfferRefusal: offer.Refusal, QuotaFen: res.QuotaFen})
		return
	}
	writeJSON(w, offer.Quote)
}

// setOverride sets an operator's fixed quota for a user, from a JSON body
// {quota_fen, reason, expires_at}: published as a set_override event to
// the operator topic (202); the pipeline applies it and makes the user's
// recompute due at once, so the new quota is published within a second or
// so. The operator recorded is the holder of the request's token: an
// "operator" in the body is ignored (fenqictl sends $USER, which proves
// nothing).
func (a *admin) setOverride(w http.ResponseWriter, r *http.Request) {
	var ov state.Override
	if !decodeBody(w, r, "override", &ov) || !a.checkGrant(w, ov.QuotaFen, ov.Reason, ov.ExpiresAt) {
		return
	}
	acc, ok := a.submit(w, r, events.Operator{Action: events.OperatorSetOverride, QuotaFen: ov.QuotaFen, Reason: ov.Reason,
		ExpiresAt: ov.ExpiresAt}, a.now())
	if !ok {
		return
	}
	log := a.log.With("operator", acc.Operator, "event_id", acc.EventID)
	if ov.Operator != "" && ov.Operator != acc.Operator {
		log = log.With("operator_claimed", ov.Operator)
	}
	log.Info("operator override submitted", "expires_at", ov.ExpiresAt)
	writeJSONStatus(w, http.StatusAccepted, acc)
}

// clearOverride removes a user's override, through a clear_override event
// (202); the recompute is due at once when the pipeline applies it.
func (a *admin) clearOverride(w http.ResponseWriter, r *http.Request) {
	acc, ok := a.submit(w, r, events.Operator{Action: events.OperatorClearOverride}, a.now())
	if !ok {
		return
	}
	a.log.Info("operator override clear submitted", "operator", acc.Operator, "event_id", acc.EventID)
	writeJSONStatus(w, http.StatusAccepted, acc)
}

// decodeBody decodes a JSON request body into v (unknown fields refused)
// and answers the request with the error when it cannot (what names the
// body in the message).
func decodeBody(w http.ResponseWriter, r *http.Request, what string, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	var ne net.Error
	switch {
	case err == nil:
		return true
	case errors.As(err, &tooBig):
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("%s body: larger than %d bytes (-admin-max-body-bytes)", what, tooBig.Limit))
	case errors.As(err, &ne) && ne.Timeout():
		httpError(w, http.StatusRequestTimeout, fmt.Errorf("%s body: not received within -admin-read-timeout", what))
	default:
		httpError(w, http.StatusBadRequest, fmt.Errorf("%s body: %w", what, err))
	}
	return false
}

// checkGrant checks an operator's grant (an override, a special quota)
// and answers the request with 400 when it is not valid.
func (a *admin) checkGrant(w http.ResponseWriter, quotaFen int64, reason string, expiresAt time.Time) bool {
	switch {
	case quotaFen < 0:
		httpError(w, http.StatusBadRequest, fmt.Errorf("quota_fen must be ≥ 0, got %d", quotaFen))
	case reason == "":
		httpError(w, http.StatusBadRequest, errors.New("reason is required"))
	case !expiresAt.After(a.now()):
		httpError(w, http.StatusBadRequest, fmt.Errorf("expires_at %s is not in the future", expiresAt.Format(time.RFC3339)))
	case expiresAt.After(events.Latest):
		httpError(w, http.StatusBadRequest, fmt.Errorf("expires_at %s is after %s, the latest time fenqi's events carry",
			expiresAt.Format(time.RFC3339), events.Latest.Format(time.RFC3339)))
	default:
		return true
	}
	return false
}

// setSpecial grants a user a special temporary quota, from a JSON body
// {quota_fen, reason, expires_at}: the pool education and medical
// purchases draw on (DOMAIN.md §5), until it expires. It is published as
// a set_special event to the operator topic (202) and applied by the
// pipeline. The operator is the token's holder.
func (a *admin) setSpecial(w http.ResponseWriter, r *http.Request) {
	var sp state.Special
	if !decodeBody(w, r, "special quota", &sp) || !a.checkGrant(w, sp.QuotaFen, sp.Reason, sp.ExpiresAt) {
		return
	}
	acc, ok := a.submit(w, r, events.Operator{Action: events.OperatorSetSpecial, QuotaFen: sp.QuotaFen, Reason: sp.Reason,
		ExpiresAt: sp.ExpiresAt}, a.now())
	if !ok {
		return
	}
	a.log.Info("special quota grant submitted", "operator", acc.Operator, "event_id", acc.EventID, "quota_fen", sp.QuotaFen, "expires_at", sp.ExpiresAt)
	writeJSONStatus(w, http.StatusAccepted, acc)
}

// clearSpecial removes a user's special quota, through a clear_special
// event (202).
func (a *admin) clearSpecial(w http.ResponseWriter, r *http.Request) {
	acc, ok := a.submit(w, r, events.Operator{Action: events.OperatorClearSpecial}, a.now())
	if !ok {
		return
	}
	a.log.Info("special quota clear submitted", "operator", acc.Operator, "event_id", acc.EventID)
	writeJSONStatus(w, http.StatusAccepted, acc)
}

// recomputeView is the reply of POST /v1/recompute.
type recomputeView struct {
	Due   int64 `json:"due"`   // users whose recompute is now due
	Known int64 `json:"known"` // users in the cycle's index
}

// recomputeAll makes every known user's recompute due now, once (after a
// policy or model change that should reach everyone at once rather than
// over the cycle); the jobs work them off at the recompute rate.
func (a *admin) recomputeAll(w http.ResponseWriter, r *http.Request) {
	p, _ := a.policies.get()
	cyc, now := jobs.CycleOf(p), a.now()
	if err := a.store.RecomputeAll(r.Context(), now, cyc); err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	var v recomputeView
	var err error
	if v.Due, v.Known, err = a.store.RecomputeStats(r.Context(), now, cyc); err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	a.log.Info("every user's recompute made due", "due", v.Due, "known", v.Known, "operator", caller(r).name)
	writeJSON(w, v)
}

// epochView is one input topic's offset epoch (see state.Store.RaiseEpoch).
type epochView struct {
	Topic string `json:"topic"` // its name, as fenqid is configured (-topic-*)
	Index int    `json:"index"` // the state's topic index: its position among the input topics, from 1
	Epoch uint32 `json:"epoch"` // 0 until first raised
}

// epochsView is the reply of GET /v1/epochs: every input topic, in index order.
type epochsView struct {
	Topics []epochView `json:"topics"`
}

// inputTopics are the input topic names, in index order (index = position + 1).
func (a *admin) inputTopics() []string {
	if a.topics == (consumers.Topics{}) {
		return consumers.DefaultTopics().List()
	}
	return a.topics.List()
}

// epochs lists the input topics' offset epochs.
func (a *admin) epochs(w http.ResponseWriter, r *http.Request) {
	eps, err := a.store.Epochs(r.Context())
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	v := epochsView{Topics: []epochView{}}
	for i, name := range a.inputTopics() {
		v.Topics = append(v.Topics, epochView{Topic: name, Index: i + 1, Epoch: eps[i+1]})
	}
	writeJSON(w, v)
}

// raiseEpoch starts a new offset epoch for the input topic named in the
// path: from fenqid's next batch on, the topic's records are compared with
// the offsets applied in the new epoch only, so that a topic recreated, or
// whose offsets were reset, is read as new rather than as redeliveries.
func (a *admin) raiseEpoch(w http.ResponseWriter, r *http.Request) {
	name, topics := r.PathValue("topic"), a.inputTopics()
	i := slices.Index(topics, name)
	if i < 0 {
		httpError(w, http.StatusNotFound, fmt.Errorf("no input topic is named %q: the input topics are %s", name, strings.Join(topics, ", ")))
		return
	}
	epoch, err := a.store.RaiseEpoch(r.Context(), i+1)
	if err != nil {
		httpError(w, http.StatusServiceUnavailable, err)
		return
	}
	a.log.Warn("offset epoch raised: the topic's offsets count as new from the next batch on", "topic", name, "index", i+1, "epoch", epoch, "operator", caller(r).name)
	writeJSON(w, epochView{Topic: name, Index: i + 1, Epoch: epoch})
}

func writeJSON(w http.ResponseWriter, v any) { writeJSONStatus(w, http.StatusOK, v) }

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func httpError(w http.ResponseWriter, status int, err error) {
	writeJSONStatus(w, status, map[string]string{"error": err.Error()})
}

// serve runs the listener on addr until ctx ends.
func (a *admin) serve(ctx context.Context, addr string) error {
	ln, err := a.conf.listen(addr)
	if err != nil {
		return err
	}
	return a.serveOn(ctx, ln)
}

// serveOn serves ln (closed on return) until ctx ends, with conf's
// timeouts, caps and TLS.
func (a *admin) serveOn(ctx context.Context, ln net.Listener) error {
	srv, err := a.conf.server(a.handler(), a.log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	auth, _ := a.conf.auth()
	writers := 0
	for _, t := range auth.tokens {
		if t.write {
			writers++
		}
	}
	a.log.Info("admin listener", "addr", ln.Addr().String(), "tls", srv.TLSConfig != nil, "max_conns", a.conf.MaxConns,
		"write_tokens", writers, "read_tokens", len(auth.tokens)-writers)
	switch {
	case auth.open:
		a.log.Warn("the admin API is open to anyone who reaches the listener: no admin token, and -admin-insecure")
	case len(auth.tokens) == 0:
		a.log.Warn("the admin API answers 401 to every /v1 request: no admin token (set FENQI_ADMIN_TOKEN or FENQI_ADMIN_TOKEN_FILE)")
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if srv.TLSConfig != nil {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin listener: %w", err)
	}
	return nil
}
