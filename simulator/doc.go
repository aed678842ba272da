// Package simulator generates realistic input traffic for fenqi: credit
// profiles, payments, logins and repayments of a population of users, as
// structured CloudEvents (events.Marshal) keyed by user id, ready for the
// four input topics. `make run` and `fenqictl simulate` use it.
//
// The population: each user has a home city (pinyin, e.g. "shanghai"), one
// or two usual devices and a credit profile, emitted before any other event
// of the user (pay score 450–820, most users verified, a few blacklisted
// banks, judicial defaulters and negative linked accounts, log-normal
// wealth balances, time zone mostly empty = Asia/Shanghai).
//
// The traffic, roughly: 55% payments (mostly e-commerce, local life and
// offline retail; some transfers and red packets; few education and medical
// payments; mostly 5–500 yuan with a tail of 2,000–20,000 yuan; installments
// mostly 0, some 3/6/12/24), 35% logins (about 2% from another city, 2% from
// a new device) and 10% repayments (a bill falls due, and usually a payment
// of it follows a little later, sometimes partial, sometimes never). A few
// bills arrive already more than 3 days overdue and a few profile updates
// happen, so that the freeze and quota paths show within seconds of a
// `make run`.
//
// Event times are Config.Now(), except for about 3% of payments, placed at
// night (00:00–05:59 in the user's time zone) within the last 24 hours and
// often large, so that the night large-payment rule fires early. No time is
// ever in the future. A small share of events (Config.MalformedRatio) is
// malformed on purpose, to exercise the dead-letter path.
//
// Given the same Config (seed and clock), Next returns the same sequence.
package simulator
