package banks

import (
	"fmt"
	"regexp"
)

// Reason is a normalized outcome of one record as a bank reported it: PAID or
// why it failed. Banks' own codes and texts are mapped onto these by their
// profile (Profile.Classify); the raw code and text are always kept beside it.
type Reason string

// The normalized reasons.
const (
	ReasonPaid              Reason = "PAID"
	ReasonNameMismatch      Reason = "NAME_MISMATCH"      // 户名与账号不符
	ReasonIDMismatch        Reason = "ID_MISMATCH"        // 证件号码与账户不符
	ReasonAccountNotFound   Reason = "ACCOUNT_NOT_FOUND"  // 卡或帐号不存在
	ReasonAccountClosed     Reason = "ACCOUNT_CLOSED"     // 卡或帐号已销户
	ReasonAccountFrozen     Reason = "ACCOUNT_FROZEN"     // 账户冻结 / 全冻户
	ReasonAccountLost       Reason = "ACCOUNT_LOST"       // 卡或帐号已挂失
	ReasonAccountDormant    Reason = "ACCOUNT_DORMANT"    // 久悬 / 睡眠户
	ReasonAccountInactive   Reason = "ACCOUNT_INACTIVE"   // 卡或帐号未激活
	ReasonAccountRestricted Reason = "ACCOUNT_RESTRICTED" // 只收不付 / 只收不贷 / 止付
	ReasonAmountLimit       Reason = "AMOUNT_LIMIT"       // 超过账户限额
	ReasonBankRetryable     Reason = "BANK_RETRYABLE"     // 银行原因，请重新发送
	ReasonOther             Reason = "OTHER"              // anything not mapped; the raw code decides
)

// ReasonClass says what has to happen before a failed record can be paid.
type ReasonClass string

// The reason classes.
const (
	ReasonClassNone       ReasonClass = "none"        // PAID: nothing
	ReasonClassRetry      ReasonClass = "retry"       // send again as is (bank-side problem)
	ReasonClassFixData    ReasonClass = "fix_data"    // the department corrects name/ID/account and reissues
	ReasonClassNewAccount ReasonClass = "new_account" // the recipient needs another (or a reactivated) account
)

type reasonInfo struct {
	class ReasonClass
	label string
}

var reasonTable = map[Reason]reasonInfo{
	ReasonPaid:              {ReasonClassNone, "已入账"},
	ReasonNameMismatch:      {ReasonClassFixData, "户名与账号不符"},
	ReasonIDMismatch:        {ReasonClassFixData, "证件号码与账户不符"},
	ReasonAccountNotFound:   {ReasonClassFixData, "账号不存在"},
	ReasonAccountClosed:     {ReasonClassNewAccount, "账户已销户"},
	ReasonAccountFrozen:     {ReasonClassNewAccount, "账户已冻结"},
	ReasonAccountLost:       {ReasonClassNewAccount, "账户已挂失"},
	ReasonAccountDormant:    {ReasonClassNewAccount, "久悬或睡眠账户（需激活或更换账户）"},
	ReasonAccountInactive:   {ReasonClassNewAccount, "账户未激活"},
	ReasonAccountRestricted: {ReasonClassNewAccount, "账户状态受限（止付、只收不付等）"},
	ReasonAmountLimit:       {ReasonClassNewAccount, "超过账户收款限额"},
	ReasonBankRetryable:     {ReasonClassRetry, "银行原因，可重新发送"},
	ReasonOther:             {ReasonClassFixData, "其他原因（见银行返回信息）"},
}

// AllReasons lists every reason, PAID first, OTHER last.
func AllReasons() []Reason {
	return []Reason{ReasonPaid, ReasonNameMismatch, ReasonIDMismatch, ReasonAccountNotFound, ReasonAccountClosed,
		ReasonAccountFrozen, ReasonAccountLost, ReasonAccountDormant, ReasonAccountInactive, ReasonAccountRestricted,
		ReasonAmountLimit, ReasonBankRetryable, ReasonOther}
}

// ParseReason accepts a reason's name as written in profiles and JSON.
func ParseReason(s string) (Reason, error) {
	if _, ok := reasonTable[Reason(s)]; ok {
		return Reason(s), nil
	}
	return "", fmt.Errorf("banks: unknown reason %q", s)
}

// Valid reports whether r is one of the known reasons.
func (r Reason) Valid() bool { _, ok := reasonTable[r]; return ok }

// Class says what must happen before the record can be paid. An unknown
// reason is treated like OTHER (fix_data: a person looks at it; never retried
// blindly).
func (r Reason) Class() ReasonClass {
	if i, ok := reasonTable[r]; ok {
		return i.class
	}
	return ReasonClassFixData
}

// LabelZH is the Chinese text shown to the platform's staff.
func (r Reason) LabelZH() string {
	if i, ok := reasonTable[r]; ok {
		return i.label
	}
	return reasonTable[ReasonOther].label
}

// DefaultMessagePatterns maps failure texts seen from many banks onto reasons.
// A profile applies them after its own codes and patterns unless it sets
// codes.default_messages: false. Order matters: the first match wins.
var DefaultMessagePatterns = []ReasonPattern{
	{Pattern: `销户`, Reason: ReasonAccountClosed},
	{Pattern: `挂失`, Reason: ReasonAccountLost},
	{Pattern: `未激活`, Reason: ReasonAccountInactive},
	{Pattern: `久悬|睡眠|不动户|休眠`, Reason: ReasonAccountDormant},
	{Pattern: `冻结|全冻`, Reason: ReasonAccountFrozen},
	{Pattern: `只收不付|只收不贷|只付不收|止付|状态(受限|异常)`, Reason: ReasonAccountRestricted},
	{Pattern: `(户名|姓名|账户名|帐户名).*(不符|不一致|错误)`, Reason: ReasonNameMismatch},
	{Pattern: `(证件|身份证).*(不符|不一致|错误)`, Reason: ReasonIDMismatch},
	{Pattern: `不存在|无此(账|帐|卡)`, Reason: ReasonAccountNotFound},
	{Pattern: `限额|超限`, Reason: ReasonAmountLimit},
	{Pattern: `银行原因|重新发送|系统(繁忙|异常|错误)|超时`, Reason: ReasonBankRetryable},
}

// ReasonPattern maps bank failure texts matching a regular expression onto a
// reason.
type ReasonPattern struct {
	Pattern string `yaml:"pattern"`
	Reason  Reason `yaml:"reason"`
	re      *regexp.Regexp
}

var defaultPatterns = compilePatterns(DefaultMessagePatterns)

func compilePatterns(ps []ReasonPattern) []ReasonPattern {
	out := make([]ReasonPattern, len(ps))
	for i, p := range ps {
		p.re = regexp.MustCompile(p.Pattern)
		out[i] = p
	}
	return out
}
