// Package simulator generates realistic input traffic for fenqi: credit
// profiles, payments, logins and repayments of a population of users, as
// structured CloudEvents (events.Marshal) keyed by user id, ready for the
// four input topics. `make run` and `fenqictl simulate` use it.
//
// The population: each user has a home city (pinyin, e.g. "shanghai"), one
// or two usual devices and a credit profile, emitted before any other event
// of the user (pay score 450–820, most users verified, a few blacklisted
// banks, judicial defaulters and negative linked accounts, log-normal
// wealth balances, time zone mostly empty = Asia/Shanghai; a partner-pool
// limit for 80%, a Weilidai line for 70%, an alert threshold for 15%).
//
// # The back-dated history
//
// With Config.HistoryDays (fenqid's -simulate: DefaultHistoryDays, 90),
// the users (or the busiest Config.HistoryShare of them) first get a
// history of that many days, so that the quota model, the activity gates
// and the overdue rules have something to judge from the first minute.
// User by user:
//
//   - a profile at the start of the window: pay scores around 550–800
//     (normal, mean 700, sd 60), 97% verified (96% of them with occupation
//     and education), a card bound long before for 95% (2% none, 3% bound
//     shortly before the window: under 6 months at its end), a wealth
//     balance for 90% (median 10,000 yuan), the partner-pool, Weilidai and
//     alert-threshold fields as above, 3% with a serious default reported
//     elsewhere (half of them within the last 6 months), 1% judicial
//     defaulters, 1.5% negative linked accounts;
//   - pay-now payments (never a credit purchase: those would be judged
//     against a quota not computed yet): for 92% of the users 3.6 a day or
//     more on average over the last 31 days (about 120 in the 30-day
//     activity window: they pass the ≥ 3 a day gate; the others 0.4–2.7 a
//     day), a tenth to a fifth of that before, with larger amounts, so
//     that a month's spend stays level (each user's own month-to-month
//     volatility spreads the stability factor); transfers and red packets
//     at each user's own social rate (median 8 a month); few at night;
//   - logins on half the days or more for 94% of the users (the others on
//     5–27% of them: fewer than 10 days in 30), a little less often before
//     the last month, mostly from the usual device;
//   - bills (due events, pool drawn as for a credit purchase): 0 to 3 due
//     in the past, 88% repaid on time and written before their due event (a
//     prepayment: the bill never opens), the others repaid 1 hour to 45
//     days late (a few more than 30 days: a serious default), written just
//     after their due event; and for 3% of the users one still open and more
//     than 72 hours overdue (a freeze at start; 35% of them repaid in the
//     first minutes of the live traffic: an unfreeze), for 3% one 25–70
//     hours overdue (a reminder at start; half repaid soon), for 15% one
//     due in the next 3 minutes to 8 hours (most repaid on time in the live
//     traffic, 15% up to 2 hours late, 10% not in the run).
//
// Every history event is in the window and in the past (the newest a
// second before the clock when the history began), so fenqid fires no
// anomaly alert on those older than risk.allowed_lateness (1 h) but counts
// them all in state. Then every user with a history gets a refreshed
// profile at the current time (its pay score drifted): it triggers the
// quota recompute that sees the whole history (Config.AfterHistory lets
// Run wait for the consumer first). Run writes the history as fast as the
// writer takes it; 3,000 users × 90 days are about 660,000 events (about
// 350 bytes each), generated in about 3 s (TestHistoryBackfillTime) and
// written into the embedded broker and applied in 7–11 s.
//
// # The live traffic
//
// Roughly: 51.5% pay-now payments (mostly e-commerce, local life and
// offline retail; some transfers and red packets; few education and
// medical payments; mostly 5–500 yuan with a tail of 2,000–20,000 yuan),
// 3.5% credit purchases (pay later, installments 1, once the decoder takes
// it, and 3/6/12/24 periods; in every spend scene and bill payments, 100 to
// 30,000 yuan by scene, so that a few of them exceed a typical quota and
// the next is refused over quota), 35% logins (about 2% from another city,
// 2% from a new device) and 10% repayments: a bill falls due — for a user
// with live credit purchases most often the first installment of the
// oldest, due in 3 to 30 days on that purchase's pool (e-commerce
// "independent", local life "shared_weilidai", education and medical
// "special_temporary", others "pay_score" or left out), else a bill of an
// older purchase on a random scene's pool — and usually a payment of it
// follows a little later, sometimes partial, sometimes never. A few bills
// arrive already more than 3 days overdue and a few profile updates
// happen, so that the freeze and quota paths show within seconds.
//
// Live event times are Config.Now(), except for about 3% of payments,
// placed at night (00:00–05:59 in the user's time zone) within the last 24
// hours and often large, so that the night large-payment rule fires early.
// No time is ever in the future. A small share of live events
// (Config.MalformedRatio) is malformed on purpose, to exercise the
// dead-letter path.
//
// Given the same Config (seed and clock), Next returns the same sequence,
// history included.
package simulator
