package events

import "time"

// Event types accepted on the input topics.
const (
	TypePayment       = "fenqi.payment.v1"
	TypeLogin         = "fenqi.login.v1"
	TypeRepaymentDue  = "fenqi.repayment.due.v1"
	TypeRepaymentPaid = "fenqi.repayment.paid.v1"
	TypeProfile       = "fenqi.profile.v1"
	// TypeOperator is an operator's change to a user (an override, a
	// special quota, a quota check), written by fenqid's admin API.
	TypeOperator = "fenqi.operator.v1"
)

// Decision types published on the decisions topic.
const (
	TypeDecisionAlert    = "fenqi.decision.alert.v1"
	TypeDecisionQuota    = "fenqi.decision.quota.v1"
	TypeDecisionFrozen   = "fenqi.decision.frozen.v1"
	TypeDecisionUnfrozen = "fenqi.decision.unfrozen.v1"
	TypeDecisionOverdue  = "fenqi.decision.overdue.v1"
)

// The default topic names (docs/events.md); every one is configurable.
const (
	TopicPayments   = "fenqi.payments"
	TopicLogins     = "fenqi.logins"
	TopicRepayments = "fenqi.repayments"
	TopicProfiles   = "fenqi.profiles"
	TopicOperator   = "fenqi.operator"
	TopicDecisions  = "fenqi.decisions"
	TopicDLQ        = "fenqi.dlq"
)

// SpecVersion is the CloudEvents version fenqi reads and writes.
const SpecVersion = "1.0"

// ContentTypeCloudEvents marks a structured-mode CloudEvent in the
// content-type header.
const ContentTypeCloudEvents = "application/cloudevents+json"

// Scene is where a payment happened (DOMAIN.md §5).
type Scene string

const (
	SceneEcommerce     Scene = "ecommerce"
	SceneLocalLife     Scene = "local_life"
	SceneOfflineRetail Scene = "offline_retail"
	SceneEducation     Scene = "education"
	SceneMedical       Scene = "medical"
	SceneTransfer      Scene = "transfer"
	SceneRedPacket     Scene = "red_packet"
	SceneBillPay       Scene = "bill_pay"
	SceneDonation      Scene = "donation"
	SceneWealth        Scene = "wealth"
	SceneOther         Scene = "other"
)

// SceneClass groups scenes for the rolling counters.
type SceneClass int

const (
	// ClassSpend is consumption: what spending stability and activity measure.
	ClassSpend SceneClass = iota
	// ClassSocial is transfers and red packets to friends (the social factor).
	ClassSocial
	// ClassFinance is bill payments, wealth products and donations.
	ClassFinance
)

// Class returns the counter class of a scene.
func (s Scene) Class() SceneClass {
	switch s {
	case SceneTransfer, SceneRedPacket:
		return ClassSocial
	case SceneBillPay, SceneWealth, SceneDonation:
		return ClassFinance
	default:
		return ClassSpend
	}
}

// Auth is how the user confirmed a login or payment.
type Auth string

const (
	AuthPassword    Auth = "password"
	AuthFace        Auth = "face"
	AuthFingerprint Auth = "fingerprint"
	AuthNone        Auth = "none"
)

// Payment is the data of a fenqi.payment.v1 event.
type Payment struct {
	UserID       string `json:"user_id"`
	AmountFen    int64  `json:"amount_fen"`
	Currency     string `json:"currency"`
	Scene        Scene  `json:"scene"`
	MerchantID   string `json:"merchant_id"`
	Installments int    `json:"installments"`
	DeviceID     string `json:"device_id"`
	City         string `json:"city"`
	Auth         Auth   `json:"auth"`
}

// Login is the data of a fenqi.login.v1 event.
type Login struct {
	UserID   string `json:"user_id"`
	DeviceID string `json:"device_id"`
	City     string `json:"city"`
	IP       string `json:"ip"`
	Auth     Auth   `json:"auth"`
}

// Quota pools (DOMAIN.md §5): the pool a purchase drew on, which its
// bill's fenqi.repayment.due.v1 names in pool. An absent or empty pool is
// PoolPayScore.
const (
	// PoolPayScore is the main quota, from the pay score (the default).
	PoolPayScore = "pay_score"
	// PoolIndependent is the partner pool, independent of the pay-score
	// quota (e-commerce; its limit is the profile's partner_limit_fen).
	PoolIndependent = "independent"
	// PoolSharedWeilidai is the main quota linked with the Weilidai line
	// (local life; the line is the profile's weilidai_limit_fen): a
	// purchase uses both.
	PoolSharedWeilidai = "shared_weilidai"
	// PoolSpecialTemporary is the special temporary quota an operator
	// grants per user with an expiry (education and medical).
	PoolSpecialTemporary = "special_temporary"
)

// RepaymentDue is the data of a fenqi.repayment.due.v1 event: a bill falls due.
type RepaymentDue struct {
	UserID    string    `json:"user_id"`
	BillID    string    `json:"bill_id"`
	AmountFen int64     `json:"amount_fen"`
	DueAt     time.Time `json:"due_at"`
	Pool      string    `json:"pool,omitempty"` // the quota pool the purchase drew on (a Pool* constant); "" = PoolPayScore
}

// RepaymentPaid is the data of a fenqi.repayment.paid.v1 event: (part of) a bill is paid.
type RepaymentPaid struct {
	UserID    string `json:"user_id"`
	BillID    string `json:"bill_id"`
	AmountFen int64  `json:"amount_fen"`
}

// Profile is the data of a fenqi.profile.v1 event: the user's credit profile snapshot.
type Profile struct {
	UserID                string `json:"user_id"`
	PayScore              int    `json:"pay_score"`
	RealNameVerified      bool   `json:"real_name_verified"`
	IdentityComplete      bool   `json:"identity_complete"`
	CardBoundSince        string `json:"card_bound_since"` // YYYY-MM-DD
	CardBankBlacklisted   bool   `json:"card_bank_blacklisted"`
	WealthBalanceFen      int64  `json:"wealth_balance_fen"`
	JudicialDefaulter     bool   `json:"judicial_defaulter"`
	LinkedAccountNegative bool   `json:"linked_account_negative"`
	TransactionLimitFen   int64  `json:"transaction_limit_fen,omitempty"` // 0 = none set
	Timezone              string `json:"timezone,omitempty"`              // IANA name; "" = the default zone
	// The fields below came after the first profiles (DOMAIN.md, "The
	// event contracts": new fields are optional); absent is zero.
	PartnerLimitFen           int64  `json:"partner_limit_fen,omitempty"`            // the partner pool's limit (PoolIndependent); 0 = none
	WeilidaiLimitFen          int64  `json:"weilidai_limit_fen,omitempty"`           // the Weilidai line (PoolSharedWeilidai); 0 = none
	AlertThresholdFen         int64  `json:"alert_threshold_fen,omitempty"`          // 信用守护: a payment at or above it notifies the user; 0 = none
	SeriousDefaultElsewhereOn string `json:"serious_default_elsewhere_on,omitempty"` // YYYY-MM-DD of the latest serious default at other institutions; "" = none
}

// The actions of a fenqi.operator.v1 event.
const (
	// OperatorSetOverride sets the user's fixed quota (quota_fen, reason,
	// expires_at) and makes its recompute due at once.
	OperatorSetOverride = "set_override"
	// OperatorClearOverride removes it, and makes the recompute due at once.
	OperatorClearOverride = "clear_override"
	// OperatorQuotaCheck counts a quota check by the user at the event's
	// time (repeated checks within 30 days lower the score).
	OperatorQuotaCheck = "quota_check"
	// OperatorSetSpecial grants the special temporary quota (quota_fen,
	// reason, expires_at).
	OperatorSetSpecial = "set_special"
	// OperatorClearSpecial removes it.
	OperatorClearSpecial = "clear_special"
)

// ValidOperatorAction reports whether a is one of the Operator* actions.
func ValidOperatorAction(a string) bool {
	switch a {
	case OperatorSetOverride, OperatorClearOverride, OperatorQuotaCheck, OperatorSetSpecial, OperatorClearSpecial:
		return true
	}
	return false
}

// OperatorGrants reports whether action a sets a grant (set_override,
// set_special): quota_fen and expires_at are then required, and absent
// for the other actions.
func OperatorGrants(a string) bool { return a == OperatorSetOverride || a == OperatorSetSpecial }

// Operator is the data of a fenqi.operator.v1 event: an operator's change
// to a user, applied by the pipeline like any event, so that a replay or a
// rebuild of state restores it.
type Operator struct {
	UserID string `json:"user_id"`
	Action string `json:"action"` // one of the Operator* actions
	// QuotaFen is the grant's quota (set_override, set_special; 0 is a
	// valid override); 0 and left out for the other actions.
	QuotaFen int64  `json:"quota_fen"`
	Reason   string `json:"reason,omitempty"` // why (required by the set_* actions)
	Operator string `json:"operator"`         // who: the admin token's holder
	// ExpiresAt is when the grant ends (set_* only; zero for the others).
	ExpiresAt time.Time `json:"expires_at"`
}

// Event is one decoded, validated input event. Exactly one of the data
// pointers is set, matching Type.
type Event struct {
	ID      string    // CloudEvents id: the upstream's unique id of the event
	Type    string    // one of the Type* input constants
	Source  string    // CloudEvents source
	Subject string    // the user id
	Time    time.Time // when it happened (event time)

	Payment *Payment
	Login   *Login
	Due     *RepaymentDue
	Paid    *RepaymentPaid
	Profile *Profile
	Op      *Operator
}

// UserID is the user the event belongs to.
func (e *Event) UserID() string { return e.Subject }

// Header is a Kafka record header, kept free of any client library's type.
type Header struct {
	Key   string
	Value []byte
}

// ReasonCode explains a refusal or a decision (DOMAIN.md §7).
type ReasonCode struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Advice  string `json:"advice,omitempty"`
}

// Decision is one output of fenqi, published as a structured CloudEvent on
// the decisions topic. ID is stable: the same trigger always yields the same
// ID, so downstream consumers drop repeats of a redelivered decision.
type Decision struct {
	ID      string
	Type    string // one of the TypeDecision* constants
	Subject string // the user id
	Time    time.Time
	Data    DecisionData
}

// DecisionData is the data of every decision type.
type DecisionData struct {
	UserID        string       `json:"user_id"`
	CausationID   string       `json:"causation_id"` // the id of the event or schedule that caused it
	Rule          string       `json:"rule"`
	Action        string       `json:"action"`
	ReasonCodes   []ReasonCode `json:"reason_codes"`
	PolicyVersion string       `json:"policy_version"`
	// Detail holds the type-specific facts (an alert's amount and local
	// time, a quota's breakdown…); it must marshal to a JSON object.
	Detail any `json:"detail,omitempty"`
}
