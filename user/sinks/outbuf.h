/*
 * A small output buffer written with one write(2) per batch: printf-style
 * formatting costs ~0.7 us per record, which at tens of thousands of
 * connections per second is taken straight from the traffic being watched.
 */
#ifndef SYNFIN_OUTBUF_H
#define SYNFIN_OUTBUF_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBUF_SIZE (64 * 1024)
/* Longest single record we ever append; the buffer is flushed before it could overflow. */
#define OUTBUF_MAX_RECORD 4096

struct outbuf {
	int fd;
	int err; /* first write error (errno), sticky */
	size_t len;
	char buf[OUTBUF_SIZE];
};

void ob_init(struct outbuf *ob, int fd);
/* Writes everything buffered and empties the buffer; returns 0 or -errno (EPIPE
 * when the reader left). After an error, later writes are dropped, never stored. */
int ob_flush(struct outbuf *ob);
/* Call between records: flushes when the next record might not fit. */
int ob_record_done(struct outbuf *ob);

/* Out of line: the buffer is full, or n is larger than the whole buffer. */
void ob_write_slow(struct outbuf *ob, const void *data, size_t n);

/* Inline: a record is dozens of these, and a call each showed in profiles. */
static inline void ob_write(struct outbuf *ob, const void *data, size_t n)
{
	if (__builtin_expect(ob->len + n > OUTBUF_SIZE, 0)) {
		ob_write_slow(ob, data, n);
		return;
	}
	__builtin_memcpy(ob->buf + ob->len, data, n);
	ob->len += n;
}

/*
 * n <= 16 bytes from a source that is at least 16 bytes long (a comm, a
 * padded name): one fixed-size copy the compiler inlines, where ob_write's
 * variable length means a call to memcpy.
 */
static inline void ob_write16(struct outbuf *ob, const char *src16, size_t n)
{
	if (__builtin_expect(ob->len + 16 > OUTBUF_SIZE, 0))
		ob_flush(ob);
	__builtin_memcpy(ob->buf + ob->len, src16, 16);
	ob->len += n;
}

static inline void ob_putc(struct outbuf *ob, char c)
{
	if (__builtin_expect(ob->len + 1 > OUTBUF_SIZE, 0))
		ob_flush(ob);
	ob->buf[ob->len++] = c;
}

void ob_puts(struct outbuf *ob, const char *s);
void ob_u64(struct outbuf *ob, uint64_t v);

/* The digits of a recent value, copied instead of computed again. Zeroed = empty. */
struct ob_memo {
	uint64_t key;
	size_t len;
	char text[24];
};

/* ob_u64, for a field that mostly repeats (a namespace inode). */
void ob_u64_memo(struct outbuf *ob, struct ob_memo *m, uint64_t v);
/* ob_u64 of a nanosecond timestamp: all but its last six digits change rarely
 * between records, so they come from hi. */
void ob_u64_split(struct outbuf *ob, struct ob_memo *hi, uint64_t v);
void ob_i64(struct outbuf *ob, int64_t v);
/* Decimal with a fixed number of fractional digits: ob_fixed(ob, 1234, 3) -> "1.234". */
void ob_fixed(struct outbuf *ob, uint64_t v, int decimals);
void ob_hex(struct outbuf *ob, uint64_t v);
/* Pads with spaces up to column width counted from mark (an earlier ob->len). */
void ob_pad_from(struct outbuf *ob, size_t mark, size_t width);
/* A JSON string literal, quotes included: escapes control characters and
 * replaces invalid UTF-8 (comm can hold any bytes) with U+FFFD. */
void ob_json_str(struct outbuf *ob, const char *s, size_t maxlen);
/* ob_json_str of a 16-byte task name (comm), with a fast path for plain ASCII. */
void ob_json_comm(struct outbuf *ob, const char comm[16]);
/* Text for people: printable ASCII kept, anything else as '?'. */
void ob_text_str(struct outbuf *ob, const char *s, size_t maxlen);
/* "1.2.3.4" or "::1"; family is AF_INET or AF_INET6, addr in network order. */
void ob_addr(struct outbuf *ob, uint8_t family, const uint8_t addr[16]);

#endif
