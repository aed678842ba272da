package scoring

import (
	"github.com/fenqi/fenqi/events"
	"github.com/fenqi/fenqi/scoring/credit"
)

// Reason codes of the anomaly rules that the policy presets do not
// catalogue yet. A policy whose reasons list defines one of them wins over
// the built-in text below.
const (
	CodeOtherCityLogin     = "FENQI_RISK_OTHER_CITY_LOGIN"
	CodeNightLarge         = "FENQI_RISK_NIGHT_LARGE"
	CodeOtherCityLarge     = "FENQI_RISK_OTHER_CITY_LARGE"
	CodeNewDeviceLarge     = "FENQI_RISK_NEW_DEVICE_LARGE"
	CodeVelocity           = "FENQI_RISK_VELOCITY"
	CodeSecondVerification = "FENQI_SECOND_VERIFICATION"
	// Why an unfrozen decision came (Unfrozen).
	CodeOverdueSettled  = "FENQI_OVERDUE_SETTLED"
	CodeJudicialCleared = "FENQI_JUDICIAL_CLEARED"
)

// builtin holds the texts of the codes above, in the catalogue's style
// (English, then the Chinese the notifier may show).
var builtin = map[string]events.ReasonCode{
	CodeOverdueSettled: {
		Code:    CodeOverdueSettled,
		Message: "The overdue bill is settled: installments resume (逾期账单已结清, 分期恢复)",
		Advice:  "Repay on time to keep your quota (按时还款以保持额度)",
	},
	CodeJudicialCleared: {
		Code:    CodeJudicialCleared,
		Message: "No longer on the judgement-defaulter list: installments resume (已移出被执行人名单, 分期恢复)",
		Advice:  "Your quota is evaluated again now (额度将重新评估)",
	},
	CodeOtherCityLogin: {
		Code:    CodeOtherCityLogin,
		Message: "Login from a city you have not logged in from recently (异地登录)",
		Advice:  "If it was you, confirm with the SMS code; if not, change your password at once (本人操作请输入短信验证码, 否则请立即修改密码)",
	},
	CodeNightLarge: {
		Code:    CodeNightLarge,
		Message: "Large payment late at night (深夜大额支付)",
		Advice:  "Confirm the payment with the SMS code sent to your phone; if it was not you, freeze your account (请输入短信验证码确认, 非本人操作请冻结账户)",
	},
	CodeOtherCityLarge: {
		Code:    CodeOtherCityLarge,
		Message: "Large payment soon after a login from another city (异地登录后大额支付)",
		Advice:  "Confirm the payment with face verification; if it was not you, freeze your account (请完成人脸识别验证, 非本人操作请冻结账户)",
	},
	CodeNewDeviceLarge: {
		Code:    CodeNewDeviceLarge,
		Message: "Large payment from a new device (新设备大额支付)",
		Advice:  "Confirm the payment with the SMS code sent to your phone; if it was not you, freeze your account (请输入短信验证码确认, 非本人操作请冻结账户)",
	},
	CodeVelocity: {
		Code:    CodeVelocity,
		Message: "Many payments in a short time (短时间内多笔支付)",
		Advice:  "Confirm these payments with verification; if they were not you, freeze your account (请完成验证确认, 非本人操作请冻结账户)",
	},
	CodeSecondVerification: {
		Code:    CodeSecondVerification,
		Message: "Education and medical installments need a second verification (教育/医疗分期需二次核验)",
		Advice:  "Provide the proof asked for: enrolment for a course, proof of visit for a hospital (教育类提供报名/入学证明, 医疗类提供就诊证明)",
	},
}

// Builtin returns scoring's own text of a code the presets do not
// catalogue (the Code constants of this package, and the credit core's:
// credit.Builtin), and false for any other code.
func Builtin(code string) (events.ReasonCode, bool) {
	if rc, ok := builtin[code]; ok {
		return rc, true
	}
	return credit.Builtin(code)
}
