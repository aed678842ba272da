package events

import (
	"encoding/json"
	"errors"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// This file is the JSON reading behind Decode: a small single-pass reader
// for the few flat objects of the input events, in place of json.Unmarshal
// (which checks the whole text, then decodes it by reflection, and for a
// structured event did both twice: the envelope, then its data).
//
// It is written to accept and refuse exactly what json.Unmarshal does for
// these struct shapes, and to leave the same values:
//
//   - the grammar and the nesting limit of encoding/json's scanner; on a
//     syntax error anywhere in the text, the error is that of encoding/json
//     (syntaxError asks it for the message: errors are rare);
//   - object keys match field names case-insensitively, with the Unicode
//     folding of encoding/json (so "ſcene" is "scene"), after unescaping;
//     unknown keys are skipped; the last of repeated keys wins;
//   - null leaves a string, number or bool field as it is, and sets a
//     pointer field to nil;
//   - a value of the wrong JSON type is an error on that field, but only
//     the first such error is reported, and only when the whole text is
//     syntactically valid;
//   - strings are unescaped, invalid UTF-8 replaced by U+FFFD (strings
//     needing either go through encoding/json);
//   - an integer field takes a number without fraction or exponent that
//     fits (strconv.ParseInt), any other number is a type error.

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// reader reads one JSON text held in buf, an object whose members are
// read in turn into the fields of a struct:
//
//	r := reader{buf: data, share: subject}
//	for r.next() {
//		switch string(r.name) {
//		case "user_id":
//			r.readString(&w.UserID)
//		default:
//			r.skip()
//		}
//	}
//	if err := r.close("data."); err != nil { ... }
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

	started bool   // next has been called
	members int    // members of the object read so far
	name    []byte // the field name of the current member (see fieldName)

	// typeErr is the first value of the wrong JSON type for its field
	// (Field "": the text is not an object).
	typeErr *json.UnmarshalTypeError
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
// key is the key's string token, quotes included; verbatim says whether
// the bytes between the quotes are its value (see str).
func (r *reader) member(first bool) (key []byte, verbatim, ok bool) {
	switch c := r.peek(); {
	case c == '}':
		r.pos++
		r.depth--
		return nil, false, false
	case c == ',' && !first:
		r.pos++
		if r.peek() != '"' {
			r.fail()
			return nil, false, false
		}
	case c != '"' || !first:
		r.fail()
		return nil, false, false
	}
	start := r.pos
	_, verbatim = r.str()
	key = r.buf[start:r.pos]
	if r.peek() != ':' {
		r.fail()
		return nil, false, false
	}
	r.pos++
	return key, verbatim, true
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
// verbatim reports that they are the string's value as they are: no
// escape sequence, valid UTF-8.
func (r *reader) str() (raw []byte, verbatim bool) {
	b := r.buf
	start := r.pos + 1 // after the opening quote
	plain, ascii := true, true
	for i := start; ; i++ {
		for i < len(b) && !strSpecial[b[i]] {
			i++
		}
		if i >= len(b) {
			r.fail()
			return nil, false
		}
		switch c := b[i]; {
		case c == '"':
			r.pos = i + 1
			raw = b[start:i]
			return raw, plain && (ascii || utf8.Valid(raw))
		case c == '\\':
			plain = false
			i++
			if i >= len(b) {
				r.fail()
				return nil, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) || !isHex(b[i+1]) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) {
					r.fail()
					return nil, false
				}
				i += 4
			default:
				r.fail()
				return nil, false
			}
		case c < ' ':
			r.fail()
			return nil, false
		default: // c >= utf8.RuneSelf
			ascii = false
		}
	}
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

// skip reads any value and returns its JSON type as encoding/json names
// it in an UnmarshalTypeError ("" after a syntax error).
func (r *reader) skip() (kind string) {
	switch c := r.peek(); c {
	case '{':
		r.open()
		for first := true; ; first = false {
			if _, _, ok := r.member(first); !ok {
				break
			}
			r.skip()
		}
		kind = "object"
	case '[':
		r.open()
		for first := true; r.element(first); first = false {
			r.skip()
		}
		kind = "array"
	case '"':
		r.str()
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
			return ""
		}
		r.number()
		kind = "number"
	}
	if r.failed {
		return ""
	}
	return kind
}

// raw reads any value and returns its text, like a json.RawMessage field.
func (r *reader) raw() []byte {
	r.peek()
	start := r.pos
	r.skip()
	return r.buf[start:r.pos]
}

// next moves to the next member of the object, leaving name set to its
// field name, and reports whether there is one. The value is read next,
// by one of the value readers or by skip. A text that is not an object has
// no members: null sets no field, and another value is a type error.
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
			r.wrongType(r.skip())
			return false
		}
	}
	key, verbatim, ok := r.member(r.members == 0)
	if !ok {
		return false
	}
	r.members++
	if r.name, ok = fieldName(key, verbatim); !ok {
		r.fail()
		return false
	}
	return true
}

// close checks that nothing but whitespace follows the object and returns
// the error json.Unmarshal would give for the text (prefix is "" for the
// envelope and "data." for the data, as for jsonError).
func (r *reader) close(prefix string) *DecodeError {
	r.end()
	switch {
	case r.failed:
		return syntaxError(r.buf)
	case r.typeErr != nil:
		return jsonError(r.typeErr, prefix)
	}
	return nil
}

// wrongType notes a value of JSON type kind ("" = none) that the current
// field cannot take, if it is the first.
func (r *reader) wrongType(kind string) {
	if kind != "" && r.typeErr == nil {
		r.typeErr = &json.UnmarshalTypeError{Value: kind, Field: string(r.name)}
	}
}

// The value readers read the next value into a field. null leaves the
// field as it is. A value of another JSON type is skipped, the field left
// as it is, and noted by wrongType.

func (r *reader) readString(dst *string) {
	switch r.peek() {
	case '"':
		start := r.pos
		raw, verbatim := r.str()
		switch {
		case r.failed:
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
		r.wrongType(r.skip())
	}
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
		r.wrongType(r.skip())
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
		r.wrongType(r.skip())
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
// does: escapes resolved, invalid UTF-8 replaced by U+FFFD. It is not ok
// when encoding/json refuses s, which str has checked it does not.
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
	}
	return string(b)
}

// fieldName returns the name of the struct field that an object key (its
// string token, and verbatim: see member) matches, lower case:
// encoding/json matches keys to field names case-insensitively, folding
// Unicode (fold.go), and every field name here is lower-case ASCII. It is
// not ok when the token does not unquote.
func fieldName(token []byte, verbatim bool) (name []byte, ok bool) {
	raw := token[1 : len(token)-1]
	if verbatim && isLowerASCII(raw) {
		return raw, true // the usual case
	}
	key := string(raw)
	if !verbatim {
		if key, ok = unquote(token); !ok {
			return nil, false
		}
	}
	name = make([]byte, 0, len(key))
	for _, c := range key {
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
		name = utf8.AppendRune(name, c)
	}
	return name, true
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
