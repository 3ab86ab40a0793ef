#include "outbuf.h"
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void ob_init(struct outbuf *ob, int fd)
{
	ob->fd = fd;
	ob->err = 0;
	ob->len = 0;
}

/*
 * A stdout that the parent left non-blocking (a shared pipe, an event loop's
 * socket) answers EAGAIN when the reader is slow: that is back-pressure, not
 * an error, so wait until it takes more, as a blocking write would.
 */
static int wait_writable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };

	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			if ((err == EAGAIN || err == EWOULDBLOCK) && !wait_writable(fd))
				continue;
			return -err;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Empties the buffer whatever happens: every writer relies on a flush making
 * room, so after a write error what is buffered (and all that follows) is
 * dropped rather than kept, and the first error stays for the caller to report.
 */
int ob_flush(struct outbuf *ob)
{
	size_t len = ob->len;

	ob->len = 0;
	if (ob->err)
		return -ob->err;
	if (len) {
		int err = write_all(ob->fd, ob->buf, len);

		if (err) {
			ob->err = -err;
			return err;
		}
	}
	return 0;
}

int ob_record_done(struct outbuf *ob)
{
	if (ob->len > OUTBUF_SIZE - OUTBUF_MAX_RECORD)
		return ob_flush(ob);
	return ob->err ? -ob->err : 0;
}

void ob_write_slow(struct outbuf *ob, const void *data, size_t n)
{
	ob_flush(ob);
	if (n > OUTBUF_SIZE) {
		if (!ob->err) {
			int err = write_all(ob->fd, data, n);

			ob->err = err ? -err : 0;
		}
		return;
	}
	memcpy(ob->buf + ob->len, data, n);
	ob->len += n;
}

void ob_puts(struct outbuf *ob, const char *s)
{
	ob_write(ob, s, strlen(s));
}

/*
 * Two digits per division: a record holds ~50 digits (nanosecond timestamps,
 * namespace inodes, ports), and one division per digit was a third of
 * synfin's user-space time under a connection storm.
 */
static const char DIGIT_PAIRS[201] =
	"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

static const uint64_t POW10[20] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
	100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
	10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};

/*
 * Decimal digits of v: log10 from the bit length (1233/4096 ~ log10 2), then
 * one compare. v | 1 makes 0 one digit and changes no other count (the powers
 * of ten it is compared with are 1 or even).
 */
static size_t decimal_digits(uint64_t v)
{
	uint64_t x = v | 1;
	unsigned t = ((64 - (unsigned)__builtin_clzll(x)) * 1233) >> 12;

	return t + 1 - (x < POW10[t]);
}

/* The n digits of v at dst, last digit first. */
static void put_digits(char *dst, size_t n, uint64_t v)
{
	char *end = dst + n;

	while (v >= 100) {
		unsigned pair = (unsigned)(v % 100);

		v /= 100;
		end -= 2;
		end[0] = DIGIT_PAIRS[2 * pair];
		end[1] = DIGIT_PAIRS[2 * pair + 1];
	}
	if (v >= 10) {
		end[-2] = DIGIT_PAIRS[2 * v];
		end[-1] = DIGIT_PAIRS[2 * v + 1];
	} else {
		end[-1] = (char)('0' + v);
	}
}

/* Straight into the buffer: no scratch copy, no memcpy call. */
void ob_u64(struct outbuf *ob, uint64_t v)
{
	size_t n = decimal_digits(v);

	if (ob->len + n > OUTBUF_SIZE)
		ob_flush(ob);
	put_digits(ob->buf + ob->len, n, v);
	ob->len += n;
}

void ob_u64_memo(struct outbuf *ob, struct ob_memo *m, uint64_t v)
{
	if (!m->len || m->key != v) {
		m->key = v;
		m->len = decimal_digits(v);
		put_digits(m->text, m->len, v);
	}
	if (ob->len + sizeof(m->text) > OUTBUF_SIZE)
		ob_flush(ob);
	__builtin_memcpy(ob->buf + ob->len, m->text, sizeof(m->text));
	ob->len += m->len;
}

void ob_u64_split(struct outbuf *ob, struct ob_memo *hi, uint64_t v)
{
	unsigned lo;

	if (v < 1000000) {
		ob_u64(ob, v);
		return;
	}
	ob_u64_memo(ob, hi, v / 1000000);
	lo = (unsigned)(v % 1000000);
	if (ob->len + 6 > OUTBUF_SIZE)
		ob_flush(ob);
	/* Six digits, leading zeros kept. */
	memset(ob->buf + ob->len, '0', 6);
	put_digits(ob->buf + ob->len, 6, lo);
	ob->len += 6;
}

void ob_i64(struct outbuf *ob, int64_t v)
{
	if (v < 0) {
		ob_putc(ob, '-');
		ob_u64(ob, (uint64_t)0 - (uint64_t)v);
		return;
	}
	ob_u64(ob, (uint64_t)v);
}

void ob_fixed(struct outbuf *ob, uint64_t v, int decimals)
{
	uint64_t scale = 1;
	char frac[20];

	for (int i = 0; i < decimals; i++)
		scale *= 10;
	ob_u64(ob, v / scale);
	if (decimals <= 0)
		return;
	v %= scale;
	for (int i = decimals - 1; i >= 0; i--) {
		frac[i] = (char)('0' + v % 10);
		v /= 10;
	}
	ob_putc(ob, '.');
	ob_write(ob, frac, (size_t)decimals);
}

void ob_hex(struct outbuf *ob, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[16];
	int i = sizeof(tmp);

	do {
		tmp[--i] = digits[v & 0xf];
		v >>= 4;
	} while (v);
	ob_write(ob, "0x", 2);
	ob_write(ob, tmp + i, sizeof(tmp) - (size_t)i);
}

void ob_pad_from(struct outbuf *ob, size_t mark, size_t width)
{
	/* A flush in between resets len; then there is nothing to align to. */
	while (ob->len >= mark && ob->len - mark < width)
		ob_putc(ob, ' ');
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	len = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (len > n)
		return 0;
	cp = s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* Reject overlong forms, surrogates and values past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

static void json_escape_byte(struct outbuf *ob, unsigned char c)
{
	static const char digits[] = "0123456789abcdef";
	char esc[6] = { '\\', 'u', '0', '0', digits[c >> 4], digits[c & 0xf] };

	switch (c) {
	case '"':
		ob_write(ob, "\\\"", 2);
		return;
	case '\\':
		ob_write(ob, "\\\\", 2);
		return;
	case '\n':
		ob_write(ob, "\\n", 2);
		return;
	case '\t':
		ob_write(ob, "\\t", 2);
		return;
	default:
		ob_write(ob, esc, sizeof(esc));
	}
}

void ob_json_str(struct outbuf *ob, const char *s, size_t maxlen)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strnlen(s, maxlen);

	ob_putc(ob, '"');
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			ob_putc(ob, (char)c);
			i++;
		} else if (c < 0x80) {
			json_escape_byte(ob, c);
			i++;
		} else {
			size_t len = utf8_seq_len(p + i, n - i);

			if (len) {
				ob_write(ob, p + i, len);
				i += len;
			} else {
				ob_write(ob, "\\ufffd", 6);
				i++;
			}
		}
	}
	ob_putc(ob, '"');
}

void ob_json_comm(struct outbuf *ob, const char comm[16])
{
	size_t n = 0;

	while (n < 16) {
		unsigned char c = (unsigned char)comm[n];

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			break;
		n++;
	}
	if (n < 16 && comm[n]) { /* something to escape or validate */
		ob_json_str(ob, comm, 16);
		return;
	}
	ob_putc(ob, '"');
	ob_write16(ob, comm, n);
	ob_putc(ob, '"');
}

void ob_text_str(struct outbuf *ob, const char *s, size_t maxlen)
{
	size_t n = strnlen(s, maxlen);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		ob_putc(ob, c > 0x20 && c < 0x7f ? (char)c : '?');
	}
}

/*
 * A byte's digits by branches, not decimal_digits() + put_digits(): eight of
 * these per record, and the general pair measured 27 ns more per record.
 */
static char *put_octet(char *p, unsigned b)
{
	if (b >= 100) {
		*p++ = (char)('0' + b / 100);
		b %= 100;
		*p++ = DIGIT_PAIRS[2 * b];
		*p++ = DIGIT_PAIRS[2 * b + 1];
	} else if (b >= 10) {
		*p++ = DIGIT_PAIRS[2 * b];
		*p++ = DIGIT_PAIRS[2 * b + 1];
	} else {
		*p++ = (char)('0' + b);
	}
	return p;
}

/* Two of these in every record: straight into the buffer, at most 15 bytes. */
static void ipv4_str(struct outbuf *ob, const uint8_t a[4])
{
	char *p;

	if (ob->len + 15 > OUTBUF_SIZE)
		ob_flush(ob);
	p = put_octet(ob->buf + ob->len, a[0]);
	for (int i = 1; i < 4; i++) {
		*p++ = '.';
		p = put_octet(p, a[i]);
	}
	ob->len = (size_t)(p - ob->buf);
}

void ob_addr(struct outbuf *ob, uint8_t family, const uint8_t addr[16])
{
	char tmp[INET6_ADDRSTRLEN];

	if (family == AF_INET) {
		ipv4_str(ob, addr);
		return;
	}
	if (!inet_ntop(AF_INET6, addr, tmp, sizeof(tmp)))
		strcpy(tmp, "?");
	ob_puts(ob, tmp);
}
