package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// This file is the JSON reading behind Decode: a small single-pass reader
// for the few flat objects of the input events, in place of json.Unmarshal
// (which checks the whole text, then decodes it by reflection, and for a
// structured event did both twice: the envelope, then its data).
//
// It accepts the grammar of encoding/json (and its nesting limit: on a
// syntax error anywhere in the text, the error is that of encoding/json,
// which syntaxError asks for the message: errors are rare), and is
// stricter than json.Unmarshal about what it reads (issue 12):
//
//   - member names match field names exactly, after unescaping; a name
//     that differs from a field's only in case or by Unicode folding
//     ("SCENE", "ſcene"), which encoding/json would take for the field, is
//     refused; other unknown names are skipped;
//   - a member name that appears twice in one object is refused
//     (encoding/json takes the last, other readers the first);
//   - every string of the text, names included, must be valid UTF-8
//     without an escaped unpaired surrogate ("\ud800"): encoding/json
//     turns both into U+FFFD, so that different bytes read the same;
//   - null leaves a string, number or bool field as it is, and sets a
//     pointer field to nil;
//   - a value of the wrong JSON type is an error on that field;
//   - an integer field takes a number without fraction or exponent that
//     fits (strconv.ParseInt), any other number is a type error.
//
// Of these faults, the first in the text is reported, and only when the
// whole text is syntactically valid. Within a member, a fault of its name
// comes before one of its value, and a type error before a string that is
// not UTF-8. The differential tests hold it to the same rules implemented
// on encoding/json (decode_oracle_test.go).

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// reader reads one JSON text held in buf, an object whose members are
// read in turn into the fields of a struct:
//
//	r := reader{buf: data, share: subject, prefix: "data.", fields: paymentFields}
//	for r.next() {
//		switch string(r.name) {
//		case "user_id":
//			r.readString(&w.UserID)
//		default:
//			r.skip()
//		}
//	}
//	if err := r.close(); err != nil { ... }
//
// A syntax error sets failed and moves to the end of buf, so that every
// further read fails quietly; close then reports it.
type reader struct {
	buf    []byte
	pos    int
	depth  int
	failed bool

	// share is a string that equal string values are set to, sparing
	// their allocation (the data gets the subject: its user_id).
	share string
	// prefix is "" for the envelope and "data." for the data: the faults'
	// Field is prefix + the field name.
	prefix string
	// fields are the object's field names, for the check of names that
	// differ from one only in case.
	fields []string

	started bool   // next has been called
	members int    // members of the object read so far
	name    []byte // the field name of the current member (nil: none matches)

	// fault is the first fault of the text other than its syntax: a
	// member name refused, a value of the wrong JSON type, a string that
	// is not UTF-8 (Field "value" or "data": the text is not an object,
	// or the fault is not in one field).
	fault *DecodeError

	seen seenNames // the member names read so far
}

// seenNames is a set of member names, small and allocation-free for the
// usual objects: the first names that are bytes of the text are kept as
// their place in it; the others, and those of a hostile object of
// thousands of members, go to a map.
type seenNames struct {
	bloom uint64
	n     int
	small [16]span
	more  map[string]struct{}
}

// span is where a name is in the text: buf[start:end].
type span struct{ start, end uint32 }

// nameBit is the bloom bit of a name: of its length and three of its
// bytes, chosen so that the field names of no object share one (a shared
// bit costs a comparison; TestNameBitsDistinct). The middle byte is the
// one before the middle of an even-length name: wealth_balance_fen and
// weilidai_limit_fen have the same length, first, middle and last bytes.
func nameBit(name []byte) uint64 {
	n := uint(len(name))
	h := 11 * n
	if n > 0 {
		h += 3*uint(name[0]) + 7*uint(name[(n-1)/2]) + uint(name[n-1])
	}
	return 1 << (h & 63)
}

// add adds name, at buf[start:] (start < 0: not in buf), to the set and
// reports whether it was there already. next has the usual case inline.
func (s *seenNames) add(buf, name []byte, start int, bit uint64) (repeated bool) {
	if s.bloom&bit != 0 {
		for _, sp := range s.small[:s.n] {
			if string(buf[sp.start:sp.end]) == string(name) {
				return true
			}
		}
		if _, ok := s.more[string(name)]; ok {
			return true
		}
	}
	s.bloom |= bit
	if start >= 0 && s.n < len(s.small) {
		s.small[s.n] = span{uint32(start), uint32(start + len(name))}
		s.n++
		return false
	}
	if s.more == nil {
		s.more = make(map[string]struct{})
	}
	s.more[string(name)] = struct{}{}
	return false
}

// setFault notes a fault if it is the first.
func (r *reader) setFault(field, reason string) {
	if r.fault == nil {
		r.fault = derr(field, reason)
	}
}

// container is the Field of a fault that is not in one field: "value" for
// the envelope, "data" for the data.
func (r *reader) container() string {
	if r.prefix == "" {
		return "value"
	}
	return "data"
}

// isField reports whether name is one of the object's fields.
func (r *reader) isField(name string) bool {
	for _, f := range r.fields {
		if f == name {
			return true
		}
	}
	return false
}

func (r *reader) fail() {
	r.failed = true
	r.pos = len(r.buf)
}

// peek skips whitespace and returns the next byte (0 at the end).
func (r *reader) peek() byte {
	i := r.pos
	for ; i < len(r.buf); i++ {
		switch c := r.buf[i]; c {
		case ' ', '\t', '\r', '\n':
		default:
			r.pos = i
			return c
		}
	}
	r.pos = i
	return 0
}

// end checks that only whitespace is left.
func (r *reader) end() {
	if r.peek(); r.pos != len(r.buf) {
		r.fail()
	}
}

// open consumes the '{' or '[' at pos.
func (r *reader) open() {
	r.pos++
	if r.depth++; r.depth > maxNestingDepth {
		r.fail()
	}
}

// member reads the key of the next member of the object being read, and
// the colon after it; first says whether it is the first member. At the
// end of the object (the '}' is consumed) or on failure it returns false.
// key is the key's string token, quotes included; verbatim and valid are
// those of str.
func (r *reader) member(first bool) (key []byte, verbatim, valid, ok bool) {
	switch c := r.peek(); {
	case c == '}':
		r.pos++
		r.depth--
		return nil, false, false, false
	case c == ',' && !first:
		r.pos++
		if r.peek() != '"' {
			r.fail()
			return nil, false, false, false
		}
	case c != '"' || !first:
		r.fail()
		return nil, false, false, false
	}
	start := r.pos
	_, verbatim, valid = r.str()
	key = r.buf[start:r.pos]
	if r.peek() != ':' {
		r.fail()
		return nil, false, false, false
	}
	r.pos++
	return key, verbatim, valid, true
}

// element moves to the next element of the array being read, like member.
func (r *reader) element(first bool) bool {
	switch c := r.peek(); {
	case c == ']':
		r.pos++
		r.depth--
		return false
	case r.failed:
		return false
	case !first:
		if c != ',' {
			r.fail()
			return false
		}
		r.pos++
	}
	return true
}

// str reads the string at pos and returns the bytes between its quotes.
// valid reports that the string is valid Unicode: its bytes valid UTF-8,
// and no escape of an unpaired surrogate. verbatim reports that the bytes
// are the string's value as they are: no escape sequence, valid UTF-8.
func (r *reader) str() (raw []byte, verbatim, valid bool) {
	b := r.buf
	start := r.pos + 1 // after the opening quote
	plain, ascii, paired := true, true, true
	for i := start; ; i++ {
		for i < len(b) && !strSpecial[b[i]] {
			i++
		}
		if i >= len(b) {
			r.fail()
			return nil, false, false
		}
		switch c := b[i]; {
		case c == '"':
			r.pos = i + 1
			raw = b[start:i]
			valid = paired && (ascii || utf8.Valid(raw))
			return raw, plain && valid, valid
		case c == '\\':
			plain = false
			i++
			if i >= len(b) {
				r.fail()
				return nil, false, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					r.fail()
					return nil, false, false
				}
				switch u := hex4(b[i+1:]); {
				case u < 0xd800 || u >= 0xe000:
				case u >= 0xdc00: // a low surrogate without its high one
					paired = false
				case i+10 < len(b) && b[i+5] == '\\' && b[i+6] == 'u' &&
					isHex(b[i+7]) && isHex(b[i+8]) && isHex(b[i+9]) && isHex(b[i+10]) &&
					hex4(b[i+7:]) >= 0xdc00 && hex4(b[i+7:]) < 0xe000:
					i += 6 // a high surrogate and its low one
				default:
					paired = false
				}
				i += 4
			default:
				r.fail()
				return nil, false, false
			}
		case c < ' ':
			r.fail()
			return nil, false, false
		default: // c >= utf8.RuneSelf
			ascii = false
		}
	}
}

// hex4 is the value of the 4 hex digits at the start of b.
func hex4(b []byte) rune {
	var u rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		u = u<<4 | rune(c)
	}
	return u
}

// strSpecial marks the bytes that str must look at: the closing quote, the
// escape character, the control characters (not allowed) and non-ASCII
// bytes (to check UTF-8).
var strSpecial = func() (t [256]bool) {
	for c := range t {
		t[c] = c == '"' || c == '\\' || c < ' ' || c >= utf8.RuneSelf
	}
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// literal reads true, false or null (lit) at pos.
func (r *reader) literal(lit string) {
	if end := r.pos + len(lit); end <= len(r.buf) && string(r.buf[r.pos:end]) == lit {
		r.pos = end
		return
	}
	r.fail()
}

// number reads the number at pos and returns its text.
func (r *reader) number() []byte {
	b, start := r.buf, r.pos
	digits := func() int {
		n := 0
		for r.pos < len(b) && '0' <= b[r.pos] && b[r.pos] <= '9' {
			r.pos++
			n++
		}
		return n
	}
	if r.pos < len(b) && b[r.pos] == '-' {
		r.pos++
	}
	switch {
	case r.pos < len(b) && b[r.pos] == '0':
		r.pos++
	case digits() == 0:
		r.fail()
		return nil
	}
	if r.pos < len(b) && b[r.pos] == '.' {
		r.pos++
		if digits() == 0 {
			r.fail()
			return nil
		}
	}
	if r.pos < len(b) && (b[r.pos] == 'e' || b[r.pos] == 'E') {
		r.pos++
		if r.pos < len(b) && (b[r.pos] == '+' || b[r.pos] == '-') {
			r.pos++
		}
		if digits() == 0 {
			r.fail()
			return nil
		}
	}
	return b[start:r.pos]
}

// skip reads the value of an unknown member: a string in it that is not
// valid Unicode is a fault of the object (see str).
func (r *reader) skip() {
	if _, valid := r.skipValue(); !valid {
		r.setFault(r.container(), fmt.Sprintf("member %s holds a string that is not %s", short(string(r.name)), validUnicode))
	}
}

// skipValue reads any value and returns its JSON type as encoding/json
// names it in an UnmarshalTypeError ("" after a syntax error), and whether
// every string in it is valid Unicode.
func (r *reader) skipValue() (kind string, valid bool) {
	valid = true
	switch c := r.peek(); c {
	case '{':
		r.open()
		for first := true; ; first = false {
			_, _, ok1, ok := r.member(first)
			if !ok {
				break
			}
			_, ok2 := r.skipValue()
			valid = valid && ok1 && ok2
		}
		kind = "object"
	case '[':
		r.open()
		for first := true; r.element(first); first = false {
			_, ok := r.skipValue()
			valid = valid && ok
		}
		kind = "array"
	case '"':
		_, _, valid = r.str()
		kind = "string"
	case 't':
		r.literal("true")
		kind = "bool"
	case 'f':
		r.literal("false")
		kind = "bool"
	case 'n':
		r.literal("null")
		kind = "null"
	default:
		if c != '-' && (c < '0' || c > '9') {
			r.fail()
			return "", true
		}
		r.number()
		kind = "number"
	}
	if r.failed {
		return "", true
	}
	return kind, valid
}

// raw reads any value and returns its text, like a json.RawMessage field.
// The strings in it are not checked: the text is read again (the data).
func (r *reader) raw() []byte {
	r.peek()
	start := r.pos
	r.skipSyntax()
	return r.buf[start:r.pos]
}

// skipSyntax reads any value, checking its syntax only: skipValue without
// its results, for raw.
func (r *reader) skipSyntax() {
	switch c := r.peek(); c {
	case '{':
		r.open()
		for first := true; ; first = false {
			if _, _, _, ok := r.member(first); !ok {
				return
			}
			r.skipSyntax()
		}
	case '[':
		r.open()
		for first := true; r.element(first); first = false {
			r.skipSyntax()
		}
	case '"':
		r.str()
	case 't':
		r.literal("true")
	case 'f':
		r.literal("false")
	case 'n':
		r.literal("null")
	default:
		if c != '-' && (c < '0' || c > '9') {
			r.fail()
			return
		}
		r.number()
	}
}

// next moves to the next member of the object, leaving name set to its
// field name, and reports whether there is one. The value is read next,
// by one of the value readers or by skip. A text that is not an object has
// no members: null sets no field, and another value is a fault.
//
// name is the member's name, unescaped, when it is valid: the caller
// matches it exactly against its fields. A name that is refused (not
// valid Unicode, a field's name in another case, a repeat) is noted as the
// fault, and name is then nil, which matches no field.
func (r *reader) next() bool {
	if !r.started {
		r.started = true
		switch r.peek() {
		case '{':
			r.open()
		case 'n':
			r.literal("null")
			return false
		default:
			if kind, _ := r.skipValue(); kind != "" {
				r.setFault(r.container(), reasonObject)
			}
			return false
		}
	}
	key, verbatim, valid, ok := r.member(r.members == 0)
	if !ok {
		return false
	}
	r.members++
	raw := key[1 : len(key)-1]
	start := cap(r.buf) - cap(raw) // raw is r.buf[start:…]
	switch {
	case verbatim && isLowerASCII(raw): // the usual case: a field's name or an unknown one
		r.name = raw
	case !valid:
		r.name = nil
		r.setFault(r.container(), "a member name is not "+validUnicode)
		return true
	default:
		if !verbatim {
			s, ok := unquote(key)
			if !ok {
				r.fail()
				return false
			}
			raw, start = []byte(s), -1
		}
		r.name = raw
		if f, ok := r.foldedField(raw); ok && f != string(raw) {
			r.name = nil
			r.setFault(r.prefix+f, fmt.Sprintf("member name %s differs from %q: member names are matched exactly", short(string(raw)), f))
			return true
		}
	}
	seen, bit := &r.seen, nameBit(r.name)
	if seen.bloom&bit == 0 && start >= 0 && seen.n < len(seen.small) { // seen.add, inline
		seen.bloom |= bit
		seen.small[seen.n] = span{uint32(start), uint32(start + len(r.name))}
		seen.n++
	} else if seen.add(r.buf, r.name, start, bit) {
		if r.isField(string(r.name)) {
			r.setFault(r.prefix+string(r.name), "repeated: a member may appear once")
		} else {
			r.setFault(r.container(), fmt.Sprintf("member %s repeated: a member may appear once", short(string(r.name))))
		}
		r.name = nil
	}
	return true
}

// close checks that nothing but whitespace follows the object and returns
// the syntax error json.Unmarshal would give for the text, or else the
// first fault.
func (r *reader) close() *DecodeError {
	r.end()
	if r.failed {
		return syntaxError(r.buf)
	}
	return r.fault
}

// wrongType notes a value of JSON type kind ("" = none: a syntax error)
// that the current field cannot take.
func (r *reader) wrongType(kind string) {
	if kind == "" {
		return
	}
	name := string(r.name)
	reason, ok := fieldReasons[name]
	if !ok {
		reason = "has the wrong JSON type (" + kind + ")"
		if r.prefix == "" {
			reason = reasonAttr
		}
	}
	r.setFault(r.prefix+name, reason)
}

// The value readers read the next value into a field. null leaves the
// field as it is. A value of another JSON type is skipped, the field left
// as it is, and noted by wrongType.

func (r *reader) readString(dst *string) {
	switch r.peek() {
	case '"':
		start := r.pos
		raw, verbatim, valid := r.str()
		switch {
		case r.failed:
		case !valid:
			r.setFault(r.prefix+string(r.name), reasonUTF8)
		case verbatim && string(raw) == r.share:
			*dst = r.share
		case verbatim:
			*dst = intern(raw)
		default:
			v, ok := unquote(r.buf[start:r.pos])
			if !ok {
				r.fail()
			}
			*dst = v
		}
	case 'n':
		r.literal("null")
	default:
		r.wrongType(r.kind())
	}
}

// kind skips a value of the wrong type and returns its JSON type.
func (r *reader) kind() string {
	kind, _ := r.skipValue()
	return kind
}

func (r *reader) readBool(dst *bool) {
	switch r.peek() {
	case 't':
		r.literal("true")
		*dst = true
	case 'f':
		r.literal("false")
		*dst = false
	case 'n':
		r.literal("null")
	default:
		r.wrongType(r.kind())
	}
}

func (r *reader) readInt64(dst *int64) {
	if n, ok := r.integer(64); ok {
		*dst = n
	}
}

func (r *reader) readInt(dst *int) {
	if n, ok := r.integer(strconv.IntSize); ok {
		*dst = int(n)
	}
}

// integer reads an integer of the given size in bits; ok is false for
// null and for a wrong value.
func (r *reader) integer(bits int) (n int64, ok bool) {
	switch c := r.peek(); {
	case c == '-' || '0' <= c && c <= '9':
		text := r.number()
		if r.failed {
			return 0, false
		}
		n, err := strconv.ParseInt(string(text), 10, bits)
		if err != nil { // a fraction, an exponent, or out of range
			r.wrongType("number " + string(text))
			return 0, false
		}
		return n, true
	case c == 'n':
		r.literal("null")
	default:
		r.wrongType(r.kind())
	}
	return 0, false
}

// readPtr reads the next value into the pointer field *dst: null sets it
// to nil, anything else goes to *dst, allocated if need be.
func readPtr[T int | int64 | bool | string](r *reader, dst **T) {
	if r.peek() == 'n' {
		r.literal("null")
		*dst = nil
		return
	}
	if *dst == nil {
		*dst = new(T)
	}
	switch p := any(*dst).(type) {
	case *int:
		r.readInt(p)
	case *int64:
		r.readInt64(p)
	case *bool:
		r.readBool(p)
	case *string:
		r.readString(p)
	}
}

// unquote decodes the string token s (quotes included) as encoding/json
// does: escapes resolved. It is not ok when encoding/json refuses s, which
// str has checked it does not; str has also checked that s is valid
// Unicode, so that nothing is replaced by U+FFFD.
func unquote(s []byte) (string, bool) {
	var v string
	err := json.Unmarshal(s, &v)
	return v, err == nil
}

// intern returns the string of b, sparing the allocation when b is one of
// the protocol's constants, which recur in every event.
func intern(b []byte) string {
	switch string(b) {
	case SpecVersion:
		return SpecVersion
	case ContentTypeJSON:
		return ContentTypeJSON
	case TypePayment:
		return TypePayment
	case TypeLogin:
		return TypeLogin
	case TypeRepaymentDue:
		return TypeRepaymentDue
	case TypeRepaymentPaid:
		return TypeRepaymentPaid
	case TypeProfile:
		return TypeProfile
	case TypeOperator:
		return TypeOperator
	case OperatorSetOverride:
		return OperatorSetOverride
	case OperatorClearOverride:
		return OperatorClearOverride
	case OperatorQuotaCheck:
		return OperatorQuotaCheck
	case OperatorSetSpecial:
		return OperatorSetSpecial
	case OperatorClearSpecial:
		return OperatorClearSpecial
	case "CNY":
		return "CNY"
	case string(SceneEcommerce):
		return string(SceneEcommerce)
	case string(SceneLocalLife):
		return string(SceneLocalLife)
	case string(SceneOfflineRetail):
		return string(SceneOfflineRetail)
	case string(SceneEducation):
		return string(SceneEducation)
	case string(SceneMedical):
		return string(SceneMedical)
	case string(SceneTransfer):
		return string(SceneTransfer)
	case string(SceneRedPacket):
		return string(SceneRedPacket)
	case string(SceneBillPay):
		return string(SceneBillPay)
	case string(SceneDonation):
		return string(SceneDonation)
	case string(SceneWealth):
		return string(SceneWealth)
	case string(SceneOther):
		return string(SceneOther)
	case string(AuthPassword):
		return string(AuthPassword)
	case string(AuthFace):
		return string(AuthFace)
	case string(AuthFingerprint):
		return string(AuthFingerprint)
	case string(AuthNone):
		return string(AuthNone)
	case PoolPayScore:
		return PoolPayScore
	case PoolIndependent:
		return PoolIndependent
	case PoolSharedWeilidai:
		return PoolSharedWeilidai
	case PoolSpecialTemporary:
		return PoolSpecialTemporary
	}
	return string(b)
}

// foldedField returns the field whose name name equals under the case
// folding of encoding/json (fold.go: case-insensitive, with Unicode
// simple folding, so "ſcene" is "scene"), if there is one. Every field
// name is lower-case ASCII.
func (r *reader) foldedField(name []byte) (string, bool) {
	folded := make([]byte, 0, len(name))
	for _, c := range string(name) {
		for { // the smallest rune of c's fold orbit, as encoding/json's foldRune
			next := unicode.SimpleFold(c)
			if next <= c {
				c = next
				break
			}
			c = next
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		folded = utf8.AppendRune(folded, c)
	}
	for _, f := range r.fields {
		if f == string(folded) {
			return f, true
		}
	}
	return "", false
}

// isLowerASCII reports whether b is ASCII without upper-case letters.
func isLowerASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// syntaxError returns the error of the invalid JSON text buf, as
// json.Unmarshal reports it.
func syntaxError(buf []byte) *DecodeError {
	var v json.RawMessage
	err := json.Unmarshal(buf, &v)
	if err == nil { // cannot happen: reader refuses what encoding/json refuses
		err = errors.New("invalid JSON")
	}
	return jsonError(err, "")
}
