#!/usr/bin/env python3
"""Writes the seed corpora, fuzz/corpus/<target>/<name>: a handful of small valid and invalid
inputs per target. Run from anywhere; it rewrites only the files it names.

The text targets take their input as it is. The structured targets decode it with the
`arbitrary` crate (1.x): integers are little-endian and read from the front, an enum's 4-byte
tag `t` picks variant `(t * variants) >> 32`, a bool is the low bit of a byte, and the last
field (`&str`, `&[u8]`) takes the rest of the input. `tag()` and the header writers below
follow those rules; `cargo fuzz fmt TARGET FILE` shows how a file decodes.
"""

import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def tag(index, variants):
    """The 4-byte enum tag that `arbitrary` decodes as variant `index` of `variants`."""
    value = -(-index * 2**32 // variants)  # ceiling division
    assert (value * variants) >> 32 == index
    return struct.pack("<I", value)


def u8(v):
    return struct.pack("<B", v)


def u16(v):
    return struct.pack("<H", v)


def i16(v):
    return struct.pack("<h", v)


def u64(v):
    return struct.pack("<Q", v)


def i64(v):
    return struct.pack("<q", v)


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


RFC_B32 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # b"12345678901234567890"
FIXTURE_B32 = "FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE"

# --- totp_verify: algorithm u8, digits u8, step u64, t0 i64, time i64, tolerance u8,
#     drift i64, min_step u64, Token tag (Raw | CodeNear {offset i16, leading u8, trailing u8}),
#     then the Raw token text.


def totp(algorithm, digits, step, t0, time, tolerance, drift, min_step, token):
    head = u8(algorithm) + u8(digits) + u64(step) + i64(t0) + i64(time) + u8(tolerance)
    head += i64(drift) + u64(min_step)
    if isinstance(token, tuple):
        offset, leading, trailing = token
        return head + tag(1, 2) + i16(offset) + u8(leading) + u8(trailing)
    return head + tag(0, 2) + token.encode()


write("totp_verify", "rfc6238-t59-sha1", totp(0, 2, 30, 0, 59, 0, 0, 0, "94287082"))
write("totp_verify", "code-at-centre", totp(0, 0, 30, 0, 1_700_000_000, 1, 0, 0, (0, 0, 0)))
write("totp_verify", "code-one-step-late-spaced", totp(1, 0, 30, 0, 1_700_000_000, 1, 0, 0, (-1, 1, 4)))
write("totp_verify", "min-step-refuses-replay", totp(0, 0, 30, 0, 1_700_000_000, 1, 0, 2**63, (0, 0, 0)))
write("totp_verify", "extreme-time-and-drift", totp(2, 4, 1, -(2**63), 2**63 - 1, 255, 2**63 - 1, 0, (1, 0, 0)))
write("totp_verify", "before-t0", totp(0, 0, 30, 1_000, 999, 1, 0, 0, (0, 0, 0)))
write("totp_verify", "zero-step", totp(0, 0, 0, 0, 0, 0, 0, 0, "123456"))
write("totp_verify", "sign-and-underscore", totp(0, 0, 30, 0, 59, 1, 0, 0, "+154_567"))
write("totp_verify", "arabic-digits", totp(0, 0, 30, 0, 59, 1, 0, 0, "١٥٤٥٦٧"))

# --- hotp_verify: params u8, counter u64, tolerance u8, Token tag (Raw | CodeNear {offset i16,
#     padded bool}), then the Raw token text.


def hotp(params, counter, tolerance, token):
    head = u8(params) + u64(counter) + u8(tolerance)
    if isinstance(token, tuple):
        offset, padded = token
        return head + tag(1, 2) + i16(offset) + u8(padded)
    return head + tag(0, 2) + token.encode()


write("hotp_verify", "rfc4226-counter1", hotp(0, 0, 5, "287082"))
write("hotp_verify", "code-ahead-padded", hotp(0, 1000, 10, (3, 1)))
write("hotp_verify", "end-of-counter-space", hotp(14, 2**64 - 2, 255, (1, 0)))
write("hotp_verify", "behind-the-window", hotp(5, 100, 3, (-1, 0)))
write("hotp_verify", "leading-zeros-too-long", hotp(0, 0, 5, "00755224"))
write("hotp_verify", "empty", hotp(0, 0, 0, ""))

# --- secret_base32: text.
for name, text in [
    ("rfc-key-base32", RFC_B32),
    ("fixture-lower-spaced", "fiv3 xiij f765 ewrs rli2 bjpv 2yox vlge"),
    ("padded", "MZXW6YQ="),
    ("dashes", "MZXW-6YTB-OI"),
    ("hex-fixture", "2a2bbba1092ffdd25a328ad1a0a5f5d61d7aacc4"),
    ("hex-upper-trimmed", "  3132333435363738393031323334353637383930\n"),
    ("bad-length", "MZXW6YTBO"),
    ("symbol-after-padding", "MY=A"),
    ("odd-hex", "abc"),
    ("not-alphabet", "MZ0W1"),
    ("empty", ""),
]:
    write("secret_base32", name, text)

# --- otpauth_uri: text.
for name, text in [
    ("totp-full", f"otpauth://totp/Example:alice%40example.com?secret={FIXTURE_B32}&issuer=Example&algorithm=SHA256&digits=8&period=60"),
    ("hotp", f"otpauth://hotp/alice?secret={RFC_B32}&counter=7"),
    ("django-padded-form-encoded", "otpauth://totp/Acme%20Co%3Aalice?secret=FIV3XIIJF765EWRSRLI2BJPV2YOXVLGE%3D%3D%3D%3D&issuer=Acme+Co"),
    ("weak-secret-image", "otpauth://totp/a?secret=MZXW6&image=https%3A%2F%2Fexample.com%2Fl.png"),
    ("issuer-mismatch", f"otpauth://totp/A:b?secret={RFC_B32}&issuer=B"),
    ("duplicate-secret", f"otpauth://totp/a?secret={RFC_B32}&secret={RFC_B32}"),
    ("bad-escape", f"otpauth://totp/a%zz?secret={RFC_B32}"),
    ("hotp-no-counter", f"otpauth://hotp/a?secret={RFC_B32}"),
    ("wrong-scheme", "https://example.com/"),
]:
    write("otpauth_uri", name, text)

# --- device_id: text.
for name, text in [
    ("totp", "totp/42"),
    ("max", "static/9223372036854775807"),
    ("underscore-kind", "my_kind2/1"),
    ("leading-zero", "totp/01"),
    ("overflow", "totp/9223372036854775808"),
    ("django-kind", "otp_totp.totpdevice/1"),
    ("upper", "Totp/1"),
    ("two-slashes", "totp/x/1"),
    ("zero", "email/0"),
]:
    write("device_id", name, text)

# --- backup_code: text.
for name, text in [
    ("shown", "ab3de-fg7hj"),
    ("upper-look-alikes", "OIL23-ABCDE"),
    ("spaced-tabbed", " ab3de\tfg7hj "),
    ("too-short", "abc-23ef"),
    ("max-len", "a" * 32),
    ("too-long", "a" * 33),
    ("fullwidth", "ａbcde23efg"),
    ("u-not-in-alphabet", "uuuuuuuuuu"),
]:
    write("backup_code", name, text)

# --- settings_toml: `NAME=VALUE` lines, `%%`, TOML (see the target).
for name, text in [
    ("defaults-empty", ""),
    ("all-groups", """failure_budget = 10
max_throttle_delay = 3600
[totp]
issuer = "Example"
image = "https://example.com/logo.png"
sync = true
throttle_factor = 1.5
tolerance = 1
max_drift = 3
[hotp]
tolerance = 5
[static]
count = 10
[email]
sender = "OTP <otp@example.com>"
subject = "Your code"
body_template = "Code: {token}"
token_validity = 300
cooldown_duration = 60
max_failures = 3
"""),
    ("env-over-toml", "OTP_TOTP_TOLERANCE=2\nOTP_TOTP_SYNC=yes\n%%\n[totp]\ntolerance = 7\n"),
    ("env-only", "OTP_EMAIL_SUBJECT=Hello\\tworld\nOTP_STATIC_COUNT= 12 \n%%\n"),
    ("numbered-names", "#3=0.25\n#20=0\n%%\n"),
    ("template-and-path", "%%\n[email]\nbody_template = \"{token}\"\nbody_template_path = \"missing.txt\"\n"),
    ("flat-name-in-toml", "OTP_TOTP_TOLERANCE = 1\n"),
    ("nan-factor", "[totp]\nthrottle_factor = nan\n"),
    ("huge-integer", "[hotp]\ntolerance = 9223372036854775807\n"),
    ("bad-syntax", "[totp\nissuer = \n"),
    ("group-not-table", "totp = 1\n"),
]:
    write("settings_toml", name, text)

# --- sealed_envelope: Input tag (Open | Mutate | KeyFile | StoredHash); Open and Mutate carry
#     a Context tag (5 variants), then the envelope text or the edits (each after a 0x01 byte;
#     Edit tag of 5 variants and its fields).


def context(i):
    return tag(i, 5)


def edit(kind, *fields):
    return b"\x01" + tag(kind, 5) + b"".join(fields)


KEY1 = "1:" + "01" * 32
KEY2 = "2:" + "02" * 32
write("sealed_envelope", "open-garbage", tag(0, 4) + context(0) + b"v1:2:" + b"00" * 40)
write("sealed_envelope", "open-unknown-key", tag(0, 4) + context(0) + b"v1:9:" + b"00" * 40)
write("sealed_envelope", "open-short-body", tag(0, 4) + context(0) + b"v1:1:0011")
write("sealed_envelope", "open-other-version", tag(0, 4) + context(1) + b"v2:1:00")
write("sealed_envelope", "mutate-none", tag(1, 4) + context(0))
write("sealed_envelope", "mutate-other-context", tag(1, 4) + context(2))
write("sealed_envelope", "mutate-flip-last", tag(1, 4) + context(0) + edit(0, u16(0xFFFF), u8(ord("0"))))
write("sealed_envelope", "mutate-upper-hex", tag(1, 4) + context(0) + edit(3, u16(10)) + edit(3, u16(11)))
write("sealed_envelope", "mutate-key-id-zero-prefix", tag(1, 4) + context(0) + edit(1, u16(3), u8(ord("0"))))
write("sealed_envelope", "mutate-truncate", tag(1, 4) + context(0) + edit(4, u16(60)))
write("sealed_envelope", "key-file-two-keys", tag(2, 4) + f"# keys\n{KEY1}\n{KEY2}  # current\n".encode())
write("sealed_envelope", "key-file-duplicate", tag(2, 4) + f"{KEY1},{KEY1}".encode())
write("sealed_envelope", "key-file-short", tag(2, 4) + b"1:0101")
write("sealed_envelope", "stored-hash", tag(3, 4) + ("1:" + "ab" * 32).encode())
write("sealed_envelope", "stored-hash-bad", tag(3, 4) + b"x:zz")

# --- web_bodies: Route tag (5), Stage tag (4), ContentType tag (8), Cookie tag (3), Origin tag
#     (5), append_csrf byte, then the lines of `Other`/`Arbitrary` choices and the body.
ROUTE = {"session": 0, "verify": 1, "challenge": 2, "login": 3, "login_otp": 4}
STAGE = {"none": 0, "fresh": 1, "alice": 2, "bob": 3}
CT = {"absent": 0, "json": 1, "json_charset": 2, "form": 3, "form_charset": 4, "multipart": 5, "text": 6, "other": 7}
COOKIE = {"session": 0, "none": 1, "arbitrary": 2}
ORIGIN = {"absent": 0, "same": 1, "cross": 2, "cross_fetch": 3, "arbitrary": 4}


def web(route, stage, ct, body, cookie="session", origin="absent", csrf=False, lines=()):
    head = tag(ROUTE[route], 5) + tag(STAGE[stage], 4) + tag(CT[ct], 8)
    head += tag(COOKIE[cookie], 3) + tag(ORIGIN[origin], 5) + u8(1 if csrf else 0)
    return head + b"".join(line.encode() + b"\n" for line in lines) + body.encode()


for name, data in [
    ("api-password-alice", web("session", "fresh", "json", '{"username":"alice","password":"secret"}')),
    ("api-password-wrong", web("session", "none", "json_charset", '{"username":"alice","password":"nope"}')),
    ("api-password-extra-field", web("session", "fresh", "json", '{"username":"a","password":"b","x":1}')),
    ("api-verify-totp", web("verify", "alice", "json", '{"device":"{totp}","token":"{code}"}')),
    ("api-verify-backup", web("verify", "alice", "json", '{"device":"{static}","token":"ab3de-fg7hj"}')),
    ("api-verify-bad-device", web("verify", "alice", "json", '{"device":"totp/0","token":"123456"}')),
    ("api-challenge-email", web("challenge", "alice", "json", '{"device":"{email}"}')),
    ("api-challenge-no-login", web("challenge", "none", "json", '{"device":"email/2"}')),
    ("api-not-json-type", web("session", "fresh", "form", '{"username":"alice","password":"secret"}')),
    ("api-cross-origin", web("verify", "alice", "json", '{"device":"{totp}","token":"000000"}', origin="cross")),
    ("api-truncated-json", web("session", "fresh", "json", '{"username":"al')),
    ("form-login", web("login", "fresh", "form", "username=alice&password=secret&next=%2Fhome", csrf=True)),
    ("form-login-no-csrf", web("login", "fresh", "form", "username=alice&password=secret")),
    ("form-login-bad-next", web("login", "fresh", "form_charset", "username=bob&password=secret&next=https%3A%2F%2Fevil.example", csrf=True)),
    ("form-login-bad-encoding", web("login", "fresh", "form", "username=%ZZ&password=%", csrf=True)),
    ("form-otp-verify", web("login_otp", "alice", "form", "device={totp}&token={code}&action=verify", csrf=True)),
    ("form-otp-challenge", web("login_otp", "alice", "form", "device={email}&action=challenge", csrf=True)),
    ("form-otp-no-login", web("login_otp", "fresh", "form", "device=totp/1&token=123456", csrf=True)),
    ("form-multipart", web("login", "fresh", "multipart", "--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nalice\r\n--x--\r\n")),
    ("other-type-arbitrary-cookie-origin", web("login", "fresh", "other", "username=alice", cookie="arbitrary", origin="arbitrary", csrf=True,
                                               lines=("application/x-www-form-urlencoded; charset=latin1", "otp_session=AAAA; x=y", "null"))),
]:
    write("web_bodies", name, data)
