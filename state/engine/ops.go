package engine

import (
	"cmp"
	"errors"
	"slices"
	"time"
)

// The changes scheduled work makes to a user, each applied to a state
// read fresh and written back with the same compare-and-set as events.

// ErrBillGone says a bill is no longer open (settled since it was read).
var ErrBillGone = errors.New("engine: bill no longer open")

// AdvanceBill records that the overdue check of an open bill reached
// stage and, with freeze, freezes the user for it. It returns whether the
// user was frozen by this call (false if frozen already), or ErrBillGone.
func AdvanceBill(s *State, billID string, stage int, freeze bool) (froze bool, err error) {
	b := s.OpenBill(billID)
	if b == nil {
		return false, ErrBillGone
	}
	if stage = min(stage, 127); int8(stage) > b.Stage {
		b.Stage = int8(stage)
	}
	if freeze {
		b.Froze = true
		if !s.FrozenOverdue {
			s.FrozenOverdue = true
			return true, nil
		}
	}
	return false, nil
}

// SaveQuota records a recompute's quota, its number and (periodic
// recomputes) the due time of the cycle it did.
func SaveQuota(s *State, quotaFen, seq int64, cycleDone time.Time) {
	s.HasQuota, s.QuotaFen, s.Recomputes = true, quotaFen, seq
	s.CycleDone = 0
	if !cycleDone.IsZero() {
		s.CycleDone = cycleDone.Unix()
	}
}

// RecordQuotaCheck counts a quota check at now and returns how many the
// user made in the window before now (this one included; at most
// MaxQuotaChecks, the latest, are kept, newest first). A check older than
// one kept (events out of order, a replay) takes its place in time.
func RecordQuotaCheck(s *State, now time.Time, window time.Duration) int {
	t := now.Unix()
	all := append([]int64{t}, s.QuotaChecks...)
	slices.SortStableFunc(all, func(x, y int64) int { return cmp.Compare(y, x) })
	newest := all[0]
	keep := make([]int64, 0, min(len(all), MaxQuotaChecks))
	n := 0
	for _, c := range all {
		if c > newest-int64(window/time.Second) && len(keep) < MaxQuotaChecks {
			keep = append(keep, c)
		}
		if c <= t && c > t-int64(window/time.Second) {
			n++
		}
	}
	s.QuotaChecks = keep
	return min(n, MaxQuotaChecks)
}

// SetOverride sets (nil: removes) an operator's fixed quota.
func SetOverride(s *State, ov *Override) error {
	if ov != nil {
		if err := errors.Join(checkLen("override reason", ov.Reason), checkLen("override operator", ov.Operator)); err != nil {
			return err
		}
		c := *ov
		ov = &c
	}
	s.Override = ov
	return nil
}
