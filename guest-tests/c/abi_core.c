// SPDX-License-Identifier: MIT
//
// abi_core: the core promises of the user_events remote-write ABI, in portable C.
//
// The Rust guest crates need a Rust std for the guest's architecture; this program needs only
// a C11 compiler and a static libc, so the same checks run on big-endian s390x and on arm64
// (built with Debian's cross gcc) as on x86-64. Each check is a KTAP result,
// `guest::abi_core::<check>`, and runs in a forked process of its own: a crash, a kill or a
// stuck wait fails that check alone, and no registration or mapping leaks into the next one.
//
// What every check keeps to:
// - The values it asserts are the kernel's writes. The bit under test starts clear where the
//   program wrote the word, so a set bit is the kernel's; a clear bit is asserted only after
//   the kernel had set it. Bytes the program wrote itself (the neighbours, another process's
//   own bit, a file's contents) are checked for being left alone, never for the event's state.
// - The kernel's "user_events: Fault for mm" warning is expected from one check only (the
//   munmap one); the program reads /dev/kmsg around each check and fails a check during which
//   the warning names another check's event (the host lets this program's warnings pass).
// - Whatever the kernel may update asynchronously (a page made copy-on-write by fork, a page
//   that had to be faulted in) is polled up to a deadline (ABI_CORE_DEADLINE_MS, default
//   10000), and the time it took is printed as a diagnostic.
// - Event names are unique per check (`abi_core_<check>`); each check disables and
//   unregisters what it made, so the events go when its data fd closes, and deletes the one
//   PERSIST event it makes.
//
// The ioctl numbers are computed here, as the uapi header does (`_IOWR('*', 0, struct
// user_reg *)`: the size field is that of a pointer), so the program builds against any libc
// and kernel headers, however old, and says which number it sent.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct user_reg {
	uint32_t size;
	uint8_t enable_bit;
	uint8_t enable_size;
	uint16_t flags;
	uint64_t enable_addr;
	uint64_t name_args;
	uint32_t write_index;
} __attribute__((__packed__));

struct user_unreg {
	uint32_t size;
	uint8_t disable_bit;
	uint8_t __reserved;
	uint16_t __reserved2;
	uint64_t disable_addr;
} __attribute__((__packed__));

_Static_assert(sizeof(struct user_reg) == 28, "struct user_reg is 28 bytes");
_Static_assert(sizeof(struct user_unreg) == 16, "struct user_unreg is 16 bytes");

#define DIAG_IOC_MAGIC '*'
#define DIAG_IOCSREG _IOC(_IOC_READ | _IOC_WRITE, DIAG_IOC_MAGIC, 0, sizeof(void *))
#define DIAG_IOCSDEL _IOC(_IOC_WRITE, DIAG_IOC_MAGIC, 1, sizeof(void *))
#define DIAG_IOCSUNREG _IOC(_IOC_WRITE, DIAG_IOC_MAGIC, 2, sizeof(void *))
#define USER_EVENT_REG_PERSIST 1

#define TRACEFS "/sys/kernel/tracing"
#define DATA_FILE TRACEFS "/user_events_data"
#define PREFIX "abi_core_"

static long page_size;
static long deadline_ms = 10000;

/* ---- KTAP: the parent prints every result, from what each check's process sent. ---- */

enum outcome { PASS, FAIL, SKIP };

struct result {
	int outcome;
	char text[480];
};

/* The pipe a check's process sends its result on. */
static int result_fd = -1;
static int result_sent;

static void send_result(int outcome, const char *fmt, va_list ap)
{
	struct result r;

	if (result_sent)
		return;
	memset(&r, 0, sizeof(r));
	r.outcome = outcome;
	if (fmt)
		vsnprintf(r.text, sizeof(r.text), fmt, ap);
	if (write(result_fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
		result_sent = 1;
}

static void send_pass(void)
{
	struct result r;

	memset(&r, 0, sizeof(r));
	r.outcome = PASS;
	if (!result_sent && write(result_fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
		result_sent = 1;
}

/* The check failed: says why, and ends the check's process. */
static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_result(FAIL, fmt, ap);
	va_end(ap);
	_exit(0);
}

static void __attribute__((noreturn, format(printf, 1, 2))) skip(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	send_result(SKIP, fmt, ap);
	va_end(ap);
	_exit(0);
}

/* A diagnostic line, printed before the check's result (the parent waits for the check). */
static void __attribute__((format(printf, 1, 2))) note(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* ---- time ---- */

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&t, &t) && errno == EINTR)
		;
}

/* ---- the enable word ---- */

/* Reads a 4- or 8-byte word as the kernel sees it: bit N is bit N of that integer. */
static uint64_t word_get(const volatile void *w, int size)
{
	return size == 4 ? *(const volatile uint32_t *)w : *(const volatile uint64_t *)w;
}

static int bit_of(const volatile void *w, int size, int bit)
{
	return (int)((word_get(w, size) >> bit) & 1);
}

/*
 * Waits up to `limit` ms until bit `bit` of the word is `want`. Returns the milliseconds it
 * took, or -1.
 */
static long wait_bit_for(const volatile void *w, int size, int bit, int want, long limit)
{
	int64_t start = now_ms(), end = start + limit;

	for (;;) {
		if (bit_of(w, size, bit) == want)
			return (long)(now_ms() - start);
		if (now_ms() > end)
			return -1;
		nap_ms(1);
	}
}

/* The same up to the deadline. */
static long wait_bit(const volatile void *w, int size, int bit, int want)
{
	return wait_bit_for(w, size, bit, want, deadline_ms);
}

/* Waits until the page differs from `before`: the milliseconds, or -1 at the deadline. */
static long wait_change(const volatile unsigned char *page, const unsigned char *before)
{
	int64_t start = now_ms(), end = start + deadline_ms;

	for (;;) {
		if (memcmp((const void *)page, before, page_size))
			return (long)(now_ms() - start);
		if (now_ms() > end)
			return -1;
		nap_ms(1);
	}
}

static void *map_page(int flags)
{
	void *p = mmap(NULL, page_size, PROT_READ | PROT_WRITE, flags | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	return p;
}

/* ---- user_events ---- */

static int open_data(void)
{
	int fd = open(DATA_FILE, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		fail("open %s: %s", DATA_FILE, strerror(errno));
	return fd;
}

/* 0, or -errno of DIAG_IOCSREG. */
static int reg_flags(int fd, const char *name_args, volatile void *word, int size, int bit,
		     int flags)
{
	struct user_reg r;

	memset(&r, 0, sizeof(r));
	r.size = sizeof(r);
	r.enable_bit = (uint8_t)bit;
	r.enable_size = (uint8_t)size;
	r.flags = (uint16_t)flags;
	r.enable_addr = (uint64_t)(uintptr_t)word;
	r.name_args = (uint64_t)(uintptr_t)name_args;
	return ioctl(fd, DIAG_IOCSREG, &r) < 0 ? -errno : 0;
}

/* Registers or fails the check: a REG the ABI promises to accept. */
static void reg(int fd, const char *name_args, volatile void *word, int size, int bit)
{
	int e = reg_flags(fd, name_args, word, size, bit, 0);

	if (e)
		fail("DIAG_IOCSREG 0x%lx of \"%s\" (size %d, bit %d, address %p): %s",
		     (unsigned long)DIAG_IOCSREG, name_args, size, bit, (void *)word, strerror(-e));
}

/* 0, or -errno of DIAG_IOCSUNREG. */
static int unreg(int fd, volatile void *word, int bit)
{
	struct user_unreg u;

	memset(&u, 0, sizeof(u));
	u.size = sizeof(u);
	u.disable_bit = (uint8_t)bit;
	u.disable_addr = (uint64_t)(uintptr_t)word;
	return ioctl(fd, DIAG_IOCSUNREG, &u) < 0 ? -errno : 0;
}

static int del(int fd, const char *name)
{
	return ioctl(fd, DIAG_IOCSDEL, name) < 0 ? -errno : 0;
}

/* Writes "1" or "0" to events/user_events/<name>/enable: 0, or -errno. */
static int set_enable(const char *name, int on)
{
	char path[256];
	int fd, e = 0;

	snprintf(path, sizeof(path), TRACEFS "/events/user_events/%s/enable", name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, on ? "1" : "0", 1) != 1)
		e = -errno;
	close(fd);
	return e;
}

static void enable(const char *name, int on)
{
	int e = set_enable(name, on);

	if (e)
		fail("write %d to events/user_events/%s/enable: %s", on, name, strerror(-e));
}

/* ---- processes: a forked helper and the messages between it and the check ---- */

struct peer {
	pid_t pid;
	int to[2];   /* check -> helper */
	int from[2]; /* helper -> check */
};

/* One message: a step's letter and what the sender saw. */
struct msg {
	char step;
	int ok;
	long ms;
	uint64_t word;
	int err;
};

static void msg_send(int fd, struct msg m)
{
	if (write(fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
		_exit(3);
}

/* The next message, or fails the check when the other side is gone or silent. */
static struct msg msg_recv(int fd, const char *who)
{
	struct msg m;
	int64_t end = now_ms() + deadline_ms + 5000;

	for (;;) {
		ssize_t n = read(fd, &m, sizeof(m));

		if (n == (ssize_t)sizeof(m))
			return m;
		if (n < 0 && errno == EAGAIN && now_ms() < end) {
			nap_ms(2);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (result_fd >= 0)
			fail("no message from the %s (it exited or stalled)", who);
		/* A helper whose check is gone has nobody to answer. */
		_exit(3);
	}
}

static void forked(struct peer *p)
{
	if (pipe(p->to) || pipe2(p->from, O_NONBLOCK))
		fail("pipe: %s", strerror(errno));
	p->pid = fork();
	if (p->pid < 0)
		fail("fork: %s", strerror(errno));
}

/* In the helper: the results go to the check, not to the harness. */
static void in_helper(struct peer *p)
{
	/* Closed, so that the check's result pipe ends when the check does. */
	close(result_fd);
	result_fd = -1;
	close(p->to[1]);
	close(p->from[0]);
}

static void in_check(struct peer *p)
{
	close(p->to[0]);
	close(p->from[1]);
}

/* Ends the helper; fails the check if it did not exit normally. */
static void reap(struct peer *p)
{
	int status;

	close(p->to[1]);
	if (waitpid(p->pid, &status, 0) < 0)
		fail("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(status))
		fail("the forked process was killed by signal %d", WTERMSIG(status));
	if (WEXITSTATUS(status))
		fail("the forked process exited %d", WEXITSTATUS(status));
}

/* ---- checks: bit placement ---- */

/*
 * Fills the page with `fill`, but leaves bit `bit` of the word clear: the program wrote
 * everything; only the kernel sets that bit.
 */
static void prime(volatile unsigned char *page, volatile unsigned char *word, int size, int bit,
		  unsigned char fill)
{
	memset((void *)page, fill, page_size);
	if (size == 4)
		*(volatile uint32_t *)word &= ~((uint32_t)1 << bit);
	else
		*(volatile uint64_t *)word &= ~((uint64_t)1 << bit);
}

/*
 * Fails the check unless the page is `want`: the word as the kernel must have left it
 * (compared as the integer the kernel sees), and every other byte as the program wrote it.
 * `ms` < 0: nothing on the page changed within the deadline.
 */
static void expect_page(const volatile unsigned char *page, const unsigned char *want,
			const volatile unsigned char *word, int size, const char *when, long ms)
{
	long at = (long)(word - page), i, stray = -1;
	char neighbour[160] = "";
	uint64_t got_word, want_word;

	for (i = 0; i < page_size && stray < 0; i++) {
		if ((i < at || i >= at + size) && page[i] != want[i])
			stray = i;
	}
	if (stray >= 0)
		snprintf(neighbour, sizeof(neighbour), "the byte at %+ld from the word is 0x%02x, "
			 "want 0x%02x (the kernel wrote outside the word)", stray - at, page[stray],
			 want[stray]);
	got_word = word_get(word, size);
	if (size == 4) {
		uint32_t w;

		memcpy(&w, want + at, 4);
		want_word = w;
	} else {
		memcpy(&want_word, want + at, 8);
	}
	if (got_word != want_word)
		fail("%s: the word is 0x%llx, want 0x%llx%s%s%s", when, (unsigned long long)got_word,
		     (unsigned long long)want_word, ms < 0 ? " (nothing changed in time)" : "",
		     stray >= 0 ? "; and " : "", neighbour);
	if (stray >= 0)
		fail("%s: %s", when, neighbour);
}

static void set_bit_in(unsigned char *page_copy, long at, int size, int bit, int on)
{
	if (size == 4) {
		uint32_t v;

		memcpy(&v, page_copy + at, 4);
		v = on ? v | ((uint32_t)1 << bit) : v & ~((uint32_t)1 << bit);
		memcpy(page_copy + at, &v, 4);
	} else {
		uint64_t v;

		memcpy(&v, page_copy + at, 8);
		v = on ? v | ((uint64_t)1 << bit) : v & ~((uint64_t)1 << bit);
		memcpy(page_copy + at, &v, 8);
	}
}

/*
 * One round of a placement check: the page filled with `fill`, the word registered, the
 * event enabled, disabled, enabled again and unregistered. After each step the whole page
 * must be what the program wrote with exactly bit `bit` of the word as the kernel must have
 * it: a misplaced bit leaves the word's own bit unchanged (and so is seen), and a stray
 * write shows up in the neighbours; with fill 0x00 a stray set, with 0xff a stray clear.
 */
static void placement_round(const char *name, int size, long offset, int bit, unsigned char fill)
{
	volatile unsigned char *page = map_page(MAP_PRIVATE);
	volatile unsigned char *word = page + page_size / 2 + offset;
	unsigned char *want = malloc(page_size), *before = malloc(page_size);
	long at = (long)(word - page), ms;
	char name_args[128];
	int fd = open_data(), e;

	if (!want || !before)
		fail("malloc");
	snprintf(name_args, sizeof(name_args), "%s u32 n", name);
	prime(page, word, size, bit, fill);
	memcpy(want, (const void *)page, page_size);
	reg(fd, name_args, word, size, bit);
	expect_page(page, want, word, size, "after REG (the event disabled)", 0);

	memcpy(before, (const void *)page, page_size);
	enable(name, 1);
	set_bit_in(want, at, size, bit, 1);
	ms = wait_change(page, before);
	expect_page(page, want, word, size, "after enable", ms);
	note("fill 0x%02x: enable set the bit in %ld ms", fill, ms);

	memcpy(before, (const void *)page, page_size);
	enable(name, 0);
	set_bit_in(want, at, size, bit, 0);
	ms = wait_change(page, before);
	expect_page(page, want, word, size, "after disable", ms);
	note("fill 0x%02x: disable cleared it in %ld ms", fill, ms);

	/* UNREG clears the bit with the word's size and address, as the enable wrote it. */
	memcpy(before, (const void *)page, page_size);
	enable(name, 1);
	set_bit_in(want, at, size, bit, 1);
	ms = wait_change(page, before);
	expect_page(page, want, word, size, "after the second enable", ms);
	e = unreg(fd, word, bit);
	if (e)
		fail("DIAG_IOCSUNREG: %s", strerror(-e));
	set_bit_in(want, at, size, bit, 0);
	expect_page(page, want, word, size, "after UNREG with the event enabled", 0);
	enable(name, 0);
	close(fd);
	munmap((void *)page, page_size);
	free(want);
	free(before);
}

static void placement(const char *name, int size, long offset, int bit)
{
	if (size == 8 && sizeof(long) < 8)
		skip("an 8-byte enable word needs a 64-bit kernel");
	/* 0x00 first: a misplaced bit is then a change the wait sees at once. */
	placement_round(name, size, offset, bit, 0x00);
	placement_round(name, size, offset, bit, 0xff);
}

#define PLACEMENT(fn, size, offset, bit)                                       \
	static void fn(void)                                                   \
	{                                                                      \
		placement(PREFIX #fn, size, offset, bit);                      \
	}

PLACEMENT(word4_at0_bit0, 4, 0, 0)
PLACEMENT(word4_at0_bit31, 4, 0, 31)
PLACEMENT(word4_at4_bit0, 4, 4, 0)
PLACEMENT(word4_at4_bit31, 4, 4, 31)
PLACEMENT(word8_bit0, 8, 0, 0)
PLACEMENT(word8_bit31, 8, 0, 31)
PLACEMENT(word8_bit32, 8, 0, 32)
PLACEMENT(word8_bit63, 8, 0, 63)

/*
 * Two registrations in one word, two events: UNREG names (address, bit), so unregistering
 * bit 2 leaves bit 9's registration following its event, and the bit 9 the kernel set stays.
 */
static void unreg_one_bit_keeps_other(void)
{
	const char *a = PREFIX "bit2", *b = PREFIX "bit9";
	volatile uint32_t *word = map_page(MAP_PRIVATE);
	int fd = open_data(), e;

	*word = 0;
	reg(fd, PREFIX "bit2 u32 n", word, 4, 2);
	reg(fd, PREFIX "bit9 u32 n", word, 4, 9);
	enable(a, 1);
	enable(b, 1);
	if (wait_bit(word, 4, 2, 1) < 0 || wait_bit(word, 4, 9, 1) < 0)
		fail("enabling both events set 0x%x, want bits 2 and 9", *word);
	e = unreg(fd, word, 2);
	if (e)
		fail("UNREG of bit 2: %s", strerror(-e));
	if (*word != 1u << 9)
		fail("after UNREG of bit 2 the word is 0x%x, want bit 9 alone", *word);
	enable(b, 0);
	if (wait_bit(word, 4, 9, 0) < 0)
		fail("disabling the event of bit 9 after UNREG of bit 2 left 0x%x: its registration "
		     "went with bit 2's", *word);
	enable(b, 1);
	if (wait_bit(word, 4, 9, 1) < 0)
		fail("enabling the event of bit 9 again left 0x%x", *word);
	enable(a, 0);
	enable(a, 1);
	nap_ms(100);
	if (*word != 1u << 9)
		fail("an enable of bit 2's event after its UNREG made the word 0x%x", *word);
	e = unreg(fd, word, 9);
	if (e)
		fail("UNREG of bit 9 after bit 2's: %s (it must still be registered)", strerror(-e));
	enable(a, 0);
	enable(b, 0);
	close(fd);
}

/*
 * A MAP_PRIVATE mapping of a file, read before REG so the file's own page is mapped
 * read-only: the kernel must write the process's private copy (its pin asks for write access,
 * which breaks copy-on-write first), never the file.
 */
static void private_file_page_untouched(void)
{
	const char *name = PREFIX "file";
	char path[] = "/tmp/abi_core_file_XXXXXX";
	unsigned char *content = malloc(page_size), *back = malloc(page_size);
	volatile uint32_t *word;
	uint32_t unchanged;
	int fd, file = mkstemp(path), e;
	long ms;

	if (file < 0 || !content || !back)
		fail("mkstemp %s: %s", path, strerror(errno));
	unlink(path);
	memset(content, 0x5a, page_size);
	if (write(file, content, page_size) != page_size)
		fail("write the file: %s", strerror(errno));
	word = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, file, 0);
	if (word == MAP_FAILED)
		fail("mmap the file MAP_PRIVATE: %s", strerror(errno));
	memcpy(&unchanged, content, 4);
	if (word[8] != unchanged)
		fail("the mapping reads 0x%x before REG, the file holds 0x%x", word[8], unchanged);
	fd = open_data();
	reg(fd, PREFIX "file u32 n", &word[8], 4, 0);
	enable(name, 1);
	ms = wait_bit(&word[8], 4, 0, 1);
	if (ms < 0 || word[8] != (unchanged | 1))
		fail("the private mapping's word is 0x%x after enable, want 0x%x", word[8],
		     unchanged | 1);
	if (pread(file, back, page_size, 0) != page_size)
		fail("pread the file: %s", strerror(errno));
	if (memcmp(back, content, page_size))
		fail("the kernel wrote the file's page: its word reads 0x%02x%02x%02x%02x as bytes, "
		     "the file held 0x5a each", back[32], back[33], back[34], back[35]);
	enable(name, 0);
	if (wait_bit(&word[8], 4, 0, 0) < 0)
		fail("disable left the private word 0x%x", word[8]);
	note("the private copy got the bit in %ld ms; the file stayed as written", ms);
	e = unreg(fd, &word[8], 0);
	if (e)
		fail("UNREG: %s", strerror(-e));
	close(fd);
	close(file);
	free(content);
	free(back);
}

/* ---- checks: fork ---- */

#define FORK_BIT 5
#define CHILD_OWN_BIT 0
#define PARENT_OWN_BIT 1

/*
 * The helper's side of the fork checks: a forked child with the parent's registration
 * (duplicated by fork) and its own copy of the page (MAP_PRIVATE) or the same page
 * (MAP_SHARED). It answers each step of the check with what it saw.
 */
static void fork_child(struct peer *p, volatile uint32_t *word, int fd, int writes)
{
	struct msg m, got;

	in_helper(p);
	if (writes)
		*word |= 1u << CHILD_OWN_BIT;
	msg_send(p->from[1], (struct msg){ .step = 'r', .ok = 1 });
	while (read(p->to[0], &got, sizeof(got)) == (ssize_t)sizeof(got)) {
		memset(&m, 0, sizeof(m));
		m.step = got.step;
		switch (got.step) {
		case 'E': /* the event was enabled: the bit must come */
			m.ms = wait_bit(word, 4, FORK_BIT, 1);
			break;
		case 'D': /* disabled: it must go */
			m.ms = wait_bit(word, 4, FORK_BIT, 0);
			break;
		case 'U': /* unregister the duplicated registration */
			m.err = unreg(fd, word, FORK_BIT);
			break;
		case 'S': /* no registration here any more: nothing may set the bit */
			nap_ms(100);
			m.ms = bit_of(word, 4, FORK_BIT) ? -1 : 0;
			break;
		}
		m.ok = m.ms >= 0 && !m.err;
		m.word = *word;
		msg_send(p->from[1], m);
	}
	_exit(0);
}

/* Sends the helper a step and returns its answer. */
static struct msg ask(struct peer *p, char step)
{
	struct msg m = { .step = step };
	struct msg r;

	if (write(p->to[1], &m, sizeof(m)) != (ssize_t)sizeof(m))
		fail("the child is gone (write: %s)", strerror(errno));
	r = msg_recv(p->from[0], "child");
	if (r.step != step)
		fail("the child answered step %c to step %c", r.step, step);
	return r;
}

/*
 * Fork with the word in a MAP_PRIVATE page (MAP_SHARED when `shared`). `child_writes` and
 * `parent_writes`: which side writes a bit of its own into the word after the fork (breaking
 * copy-on-write there before the event changes); a side that does not is updated through the
 * fault worker. Both must follow the event; then the child's UNREG must find a registration
 * of its own (fork duplicated it) and clear only the child's view of the bit (private) or the
 * shared bit (shared), and later changes reach the parent alone (private) or both (shared).
 */
static void fork_check(const char *name, int shared, int child_writes, int parent_writes)
{
	volatile uint32_t *word = map_page(shared ? MAP_SHARED : MAP_PRIVATE);
	uint32_t parent_base = 0, child_base = 0, mine = 1u << FORK_BIT;
	struct peer p;
	struct msg m;
	char name_args[128];
	int fd = open_data();
	long ms;

	snprintf(name_args, sizeof(name_args), "%s u32 n", name);
	*word = 0;
	reg(fd, name_args, word, 4, FORK_BIT);
	forked(&p);
	if (p.pid == 0)
		fork_child(&p, word, fd, child_writes);
	in_check(&p);
	m = msg_recv(p.from[0], "child");
	if (child_writes)
		child_base |= 1u << CHILD_OWN_BIT;
	if (parent_writes) {
		*word |= 1u << PARENT_OWN_BIT;
		parent_base |= 1u << PARENT_OWN_BIT;
	}
	if (shared) /* one page: each sees the other's write too */
		parent_base = child_base = parent_base | child_base;

	enable(name, 1);
	ms = wait_bit(word, 4, FORK_BIT, 1);
	m = ask(&p, 'E');
	if (ms < 0 || !m.ok)
		fail("after enable: the parent %s, the child %s (words 0x%x, 0x%llx)",
		     ms < 0 ? "never saw the bit" : "saw the bit",
		     m.ok ? "saw it" : "never saw it", *word, (unsigned long long)m.word);
	note("enable: parent saw the bit in %ld ms, child in %ld ms", ms, m.ms);
	if (*word != (parent_base | mine) || m.word != (child_base | mine))
		fail("after enable: parent's word 0x%x (want 0x%x), child's 0x%llx (want 0x%x): a "
		     "process's own write was lost or the other's leaked into it", *word,
		     parent_base | mine, (unsigned long long)m.word, child_base | mine);

	enable(name, 0);
	ms = wait_bit(word, 4, FORK_BIT, 0);
	m = ask(&p, 'D');
	if (ms < 0 || !m.ok)
		fail("after disable: the parent %s, the child %s (words 0x%x, 0x%llx)",
		     ms < 0 ? "still has the bit" : "saw it clear",
		     m.ok ? "saw it clear" : "still has it", *word, (unsigned long long)m.word);
	note("disable: parent saw the bit clear in %ld ms, child in %ld ms", ms, m.ms);
	if (*word != parent_base || m.word != child_base)
		fail("after disable: parent's word 0x%x (want 0x%x), child's 0x%llx (want 0x%x)",
		     *word, parent_base, (unsigned long long)m.word, child_base);

	/* The child's own registration, with the event enabled so that UNREG's clear shows. */
	enable(name, 1);
	if (wait_bit(word, 4, FORK_BIT, 1) < 0 || !(m = ask(&p, 'E')).ok)
		fail("the second enable was not seen by both (words 0x%x, 0x%llx)", *word,
		     (unsigned long long)m.word);
	m = ask(&p, 'U');
	if (m.err)
		fail("the child's DIAG_IOCSUNREG of the inherited (address, bit): %s (fork must "
		     "duplicate the registration)", strerror(-m.err));
	if (m.word & mine)
		fail("the child's UNREG left the bit set in its word (0x%llx)",
		     (unsigned long long)m.word);
	if (shared) {
		/* The child cleared the one page's bit; the parent's registration sets it again. */
		enable(name, 0);
		enable(name, 1);
		ms = wait_bit(word, 4, FORK_BIT, 1);
		m = ask(&p, 'E');
		if (ms < 0 || !m.ok)
			fail("after the child's UNREG, an enable through the parent's registration: "
			     "parent %s, child %s (the page is shared)", ms < 0 ? "no bit" : "bit",
			     m.ok ? "bit" : "no bit");
	} else {
		/* The parent's copy kept its bit: the child's UNREG cleared the child's copy only. */
		if (!(*word & mine))
			fail("the child's UNREG cleared the parent's copy of the bit (0x%x)", *word);
		enable(name, 0);
		if (wait_bit(word, 4, FORK_BIT, 0) < 0)
			fail("the parent's bit did not clear on disable after the child's UNREG");
		enable(name, 1);
		ms = wait_bit(word, 4, FORK_BIT, 1);
		m = ask(&p, 'S');
		if (ms < 0)
			fail("the parent's registration stopped following after the child's UNREG");
		if (!m.ok)
			fail("the child's word got the bit (0x%llx) after its UNREG: a registration "
			     "still writes it", (unsigned long long)m.word);
		note("after the child's UNREG the parent's bit came in %ld ms; the child's stayed "
		     "clear", ms);
	}
	enable(name, 0);
	reap(&p);
	unreg(fd, word, FORK_BIT);
	close(fd);
}

static void fork_private_neither_writes(void)
{
	fork_check(PREFIX "fork_private", 0, 0, 0);
}

static void cow_child_writes_first(void)
{
	fork_check(PREFIX "cow_child", 0, 1, 0);
}

static void cow_parent_writes_first(void)
{
	fork_check(PREFIX "cow_parent", 0, 0, 1);
}

static void cow_both_write(void)
{
	fork_check(PREFIX "cow_both", 0, 1, 1);
}

static void fork_shared_both_see(void)
{
	fork_check(PREFIX "fork_shared", 1, 1, 0);
}

/*
 * fork copies every registration: a process with two words for one event forks, and the
 * child can UNREG each of them (an UNREG finds only the calling process's registrations, so
 * a registration fork did not copy is ENOENT); the parent's two still follow the event after.
 * The page is MAP_SHARED only so that no copy-on-write is involved: the point is the copy of
 * the registrations, which fork_private_neither_writes and the COW checks leave at one.
 */
static void fork_copies_every_registration(void)
{
	const char *name = PREFIX "fork_two";
	volatile uint32_t *words = map_page(MAP_SHARED);
	struct peer p;
	struct msg m;
	int fd = open_data();

	words[0] = 0;
	words[16] = 0;
	reg(fd, PREFIX "fork_two u32 n", &words[0], 4, 4);
	reg(fd, PREFIX "fork_two u32 n", &words[16], 4, 4);
	forked(&p);
	if (p.pid == 0) {
		struct msg got, r = { .step = 'U' };

		in_helper(&p);
		msg_send(p.from[1], (struct msg){ .step = 'r', .ok = 1 });
		if (read(p.to[0], &got, sizeof(got)) != (ssize_t)sizeof(got))
			_exit(0);
		/* Each UNREG finds the child's own copy of a registration, or ENOENT. */
		r.err = unreg(fd, &words[0], 4);
		r.ms = unreg(fd, &words[16], 4); /* the second UNREG's error rides in `ms` */
		r.ok = !r.err && !r.ms;
		msg_send(p.from[1], r);
		_exit(0);
	}
	in_check(&p);
	msg_recv(p.from[0], "child");
	m = ask(&p, 'U');
	if (!m.ok)
		fail("the child's UNREG of the first word: %s, of the second: %s (fork copies every "
		     "registration)", m.err ? strerror(-m.err) : "ok",
		     m.ms ? strerror((int)-m.ms) : "ok");
	reap(&p);
	enable(name, 1);
	if (wait_bit(&words[0], 4, 4, 1) < 0 || wait_bit(&words[16], 4, 4, 1) < 0)
		fail("the parent's two registrations, after the child's UNREGs, set 0x%x and 0x%x",
		     words[0], words[16]);
	enable(name, 0);
	unreg(fd, &words[0], 4);
	unreg(fd, &words[16], 4);
	close(fd);
}

/* ---- checks: threads ---- */

struct thread_unreg {
	int fd;
	volatile uint32_t *word;
	int err;
};

static void *thread_unreg_run(void *arg)
{
	struct thread_unreg *t = arg;

	t->err = unreg(t->fd, t->word, 11);
	return NULL;
}

/*
 * A thread made after the process's first REG shares the process's registrations (fork
 * copies them; CLONE_VM does not): the thread's UNREG removes the one registration, so the
 * enable that follows writes nothing and the main thread's own UNREG finds nothing.
 */
static void thread_shares_registrations(void)
{
	const char *name = PREFIX "thread";
	struct thread_unreg t;
	pthread_t th;
	int e;

	t.word = map_page(MAP_PRIVATE);
	t.fd = open_data();
	*t.word = 0;
	reg(t.fd, PREFIX "thread u32 n", t.word, 4, 11);
	enable(name, 1);
	if (wait_bit(t.word, 4, 11, 1) < 0)
		fail("enable never set the bit (word 0x%x)", *t.word);
	enable(name, 0);
	if (wait_bit(t.word, 4, 11, 0) < 0)
		fail("disable never cleared the bit (word 0x%x)", *t.word);
	e = pthread_create(&th, NULL, thread_unreg_run, &t);
	if (e)
		fail("pthread_create: %s", strerror(e));
	pthread_join(th, NULL);
	if (t.err)
		fail("the thread's UNREG of the process's (address, bit): %s (a thread made after "
		     "the first REG shares the registrations)", strerror(-t.err));
	enable(name, 1);
	nap_ms(100);
	if (*t.word)
		fail("an enable after the thread's UNREG wrote the word (0x%x): the main thread "
		     "kept a registration of its own", *t.word);
	e = unreg(t.fd, t.word, 11);
	if (e != -ENOENT)
		fail("the main thread's UNREG after the thread's: %s, want ENOENT",
		     e ? strerror(-e) : "success");
	enable(name, 0);
	close(t.fd);
}

/* ---- checks: munmap ---- */

/*
 * Waits for the kernel's "user_events: Fault for mm ... event: NAME" warning, which its fault
 * worker logs when it cannot fault the word's page in: the sign that the worker is done with
 * the registration (FAULTING cleared, the registration kept). The milliseconds, or -1.
 */
static long wait_fault_warning(int kmsg, const char *name)
{
	int64_t start = now_ms(), end = start + deadline_ms;
	char rec[1024], want[160];

	snprintf(want, sizeof(want), "event: %s", name);
	for (;;) {
		ssize_t n = read(kmsg, rec, sizeof(rec) - 1);

		if (n > 0) {
			rec[n] = 0;
			if (strstr(rec, "user_events: Fault for mm") && strstr(rec, want))
				return (long)(now_ms() - start);
			continue;
		}
		if (n < 0 && errno == EPIPE) /* records overwritten: read on */
			continue;
		if (now_ms() > end)
			return -1;
		nap_ms(2);
	}
}

/*
 * The documented 6.12 behaviour of an unmapped word: an enable neither kills nor hangs the
 * process; the kernel's write fails, its fault worker cannot fault the page in and warns,
 * and the registration is kept; the process's other words still follow. Nothing is written
 * when memory is mapped at the address again (mmap is no transition), but the next
 * transition writes the new page: the registration follows the address, not the memory.
 */
static void munmap_enable_then_remap(void)
{
	const char *name = PREFIX "munmap";
	const char *name_args = PREFIX "munmap u32 n";
	volatile uint32_t *keep = map_page(MAP_PRIVATE);
	volatile uint32_t *doomed = map_page(MAP_PRIVATE);
	void *again;
	int fd = open_data(), kmsg, flips = 0, e;
	long ms, keep_ms;
	int64_t start;

	*keep = 0;
	*doomed = 0;
	/* The kept word first: the kernel walks a process's registrations newest first. */
	reg(fd, name_args, keep, 4, 3);
	reg(fd, name_args, doomed, 4, 3);
	if (munmap((void *)doomed, page_size))
		fail("munmap: %s", strerror(errno));
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg < 0)
		fail("open /dev/kmsg: %s", strerror(errno));
	lseek(kmsg, 0, SEEK_END);

	e = set_enable(name, 1);
	if (e)
		fail("enable with a registered word unmapped: %s", strerror(-e));
	keep_ms = wait_bit(keep, 4, 3, 1);
	if (keep_ms < 0)
		fail("the process's other word never got the bit: the walk stopped at the unmapped "
		     "one");
	ms = wait_fault_warning(kmsg, name);
	if (ms < 0)
		fail("no \"user_events: Fault for mm ... event: %s\" in the kernel log within %ld "
		     "ms of the enable: the fault worker never gave up on the unmapped word", name,
		     deadline_ms);
	note("enable with the word unmapped: the other word's bit in %ld ms, the fault worker's "
	     "warning in %ld ms", keep_ms, ms);
	close(kmsg);

	again = mmap((void *)doomed, page_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (again == MAP_FAILED)
		fail("mmap MAP_FIXED at the old address: %s", strerror(errno));
	*doomed = 0;
	nap_ms(100);
	if (*doomed)
		fail("the new mapping was written (0x%x) with no transition of the event", *doomed);

	/*
	 * A disable and an enable, and again while the kernel has not written it: an enable
	 * that met the registration still marked FAULTING by the worker is skipped (-EBUSY).
	 */
	start = now_ms();
	do {
		enable(name, 0);
		enable(name, 1);
		flips++;
		ms = wait_bit_for(doomed, 4, 3, 1, deadline_ms / 10 > 200 ? deadline_ms / 10 : 200);
	} while (ms < 0 && now_ms() - start < deadline_ms);
	if (ms < 0)
		fail("the registration kept across munmap never wrote the page mapped at its address "
		     "again (%d disable/enable flips, word 0x%x)", flips, *doomed);
	if (*doomed != 1u << 3)
		fail("the page mapped again got 0x%x, want only bit 3", *doomed);
	note("the kept registration wrote the new mapping after %d flip(s), in %ld ms", flips,
	     (long)(now_ms() - start));
	if (!bit_of(keep, 4, 3))
		fail("the other word lost its bit");
	enable(name, 0);
	e = unreg(fd, doomed, 3);
	if (e)
		fail("UNREG of the registration after mapping its page again: %s", strerror(-e));
	unreg(fd, keep, 3);
	close(fd);
}

/*
 * UNREG of a word whose page is gone: the registration is removed, but UNREG's promised clear
 * of the bit cannot be done, and it says so (EFAULT); a second UNREG finds nothing (ENOENT).
 */
static void unreg_unmapped_efault(void)
{
	const char *name_args = PREFIX "unreg_unmapped u32 n";
	volatile uint32_t *word = map_page(MAP_PRIVATE);
	int fd = open_data(), e;

	*word = 0;
	reg(fd, name_args, word, 4, 7);
	if (munmap((void *)word, page_size))
		fail("munmap: %s", strerror(errno));
	e = unreg(fd, word, 7);
	if (e != -EFAULT)
		fail("UNREG of an unmapped word: %s, want EFAULT (the clear cannot be done)",
		     e ? strerror(-e) : "success");
	e = unreg(fd, word, 7);
	if (e != -ENOENT)
		fail("a second UNREG: %s, want ENOENT (the first removed the registration)",
		     e ? strerror(-e) : "success");
	close(fd);
}

/* ---- checks: UNREG and DEL ---- */

/*
 * UNREG while the event is enabled: the bit the kernel had set is cleared by UNREG itself,
 * and later transitions never write the word again.
 */
static void unreg_clears_and_stops(void)
{
	const char *name = PREFIX "unreg";
	volatile uint32_t *word = map_page(MAP_PRIVATE);
	int fd = open_data(), e;
	long ms;

	*word = 0;
	reg(fd, PREFIX "unreg u32 n", word, 4, 9);
	enable(name, 1);
	ms = wait_bit(word, 4, 9, 1);
	if (ms < 0)
		fail("enable never set the bit (word 0x%x)", *word);
	e = unreg(fd, word, 9);
	if (e)
		fail("DIAG_IOCSUNREG: %s", strerror(-e));
	if (*word)
		fail("UNREG with the event enabled left the word 0x%x, want 0 (UNREG clears the "
		     "bit)", *word);
	enable(name, 0);
	enable(name, 1);
	nap_ms(100);
	if (*word)
		fail("the word got 0x%x from an enable after UNREG", *word);
	e = unreg(fd, word, 9);
	if (e != -ENOENT)
		fail("a second UNREG: %s, want ENOENT", e ? strerror(-e) : "success");
	note("enable set the bit in %ld ms; UNREG cleared it; a later enable left it clear", ms);
	enable(name, 0);
	close(fd);
}

/*
 * DEL of a PERSIST event is EBUSY while it is registered; after UNREG and the registering fd's
 * close it succeeds (at once, or after an RCU grace period: the UNREG drops its reference
 * then), the event is gone from tracefs, and a second DEL is ENOENT.
 */
static void del_after_unreg_and_close(void)
{
	const char *name = PREFIX "del";
	char dir[200];
	volatile uint32_t *word = map_page(MAP_PRIVATE);
	int fd = open_data(), other = open_data(), e, tries = 0;
	int64_t start;
	struct stat st;

	*word = 0;
	e = reg_flags(fd, PREFIX "del u32 n", word, 4, 0, USER_EVENT_REG_PERSIST);
	if (e == -EINVAL)
		skip("REG with USER_EVENT_REG_PERSIST is EINVAL: a kernel before 6.7");
	if (e)
		fail("DIAG_IOCSREG with PERSIST: %s", strerror(-e));
	snprintf(dir, sizeof(dir), TRACEFS "/events/user_events/%s", name);
	e = del(other, name);
	if (e != -EBUSY) {
		if (!e)
			fail("DEL of an event with a registration and an open fd succeeded, want "
			     "EBUSY");
		fail("DEL of a registered event: %s, want EBUSY", strerror(-e));
	}
	e = unreg(fd, word, 0);
	if (e)
		fail("DIAG_IOCSUNREG: %s", strerror(-e));
	close(fd);
	start = now_ms();
	do {
		e = del(other, name);
		tries++;
		if (e == -EBUSY)
			nap_ms(5);
	} while (e == -EBUSY && now_ms() - start < deadline_ms);
	if (e)
		fail("DEL after UNREG and close: %s after %d tries in %ld ms", strerror(-e), tries,
		     (long)(now_ms() - start));
	note("DEL succeeded on try %d, %ld ms after the close", tries, (long)(now_ms() - start));
	if (stat(dir, &st) == 0)
		fail("%s is still there after DEL", dir);
	e = del(other, name);
	if (e != -ENOENT)
		fail("a second DEL: %s, want ENOENT", e ? strerror(-e) : "success");
	close(other);
}

/* ---- the plan ---- */

struct check {
	const char *name;
	void (*run)(void);
	/* The one event whose fault warning the check provokes on purpose, if any. */
	const char *fault_event;
};

/*
 * The kernel log from its end, to see which fault warnings a check caused: the host lets this
 * program's "user_events: Fault for mm" warnings pass (it provokes one on purpose), so the
 * program itself fails a check during which one names an event of another check. -1 when
 * the log cannot be read (a note says so).
 */
static int kmsg_from_end(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd >= 0)
		lseek(fd, 0, SEEK_END);
	return fd;
}

/*
 * Reads the records logged since; copies the first fault warning that names an event of
 * this program other than `allowed` into `out` and returns 1, else 0.
 */
static int stray_fault_warning(int kmsg, const char *allowed, char *out, size_t size)
{
	char rec[1024];
	ssize_t n;

	for (;;) {
		const char *at, *ev;
		size_t len;

		n = read(kmsg, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			return 0;
		rec[n] = 0;
		at = strstr(rec, "user_events: Fault for mm");
		ev = at ? strstr(at, "event: ") : NULL;
		if (!ev)
			continue;
		ev += strlen("event: ");
		len = strcspn(ev, " \n");
		if (strncmp(ev, PREFIX, strlen(PREFIX)))
			continue;
		if (allowed && strlen(allowed) == len && !strncmp(ev, allowed, len))
			continue;
		snprintf(out, size, "%.*s", (int)strcspn(at, "\n"), at);
		return 1;
	}
}

static const struct check CHECKS[] = {
	{ "word4_at0_bit0", word4_at0_bit0, NULL },
	{ "word4_at0_bit31", word4_at0_bit31, NULL },
	{ "word4_at4_bit0", word4_at4_bit0, NULL },
	{ "word4_at4_bit31", word4_at4_bit31, NULL },
	{ "word8_bit0", word8_bit0, NULL },
	{ "word8_bit31", word8_bit31, NULL },
	{ "word8_bit32", word8_bit32, NULL },
	{ "word8_bit63", word8_bit63, NULL },
	{ "unreg_one_bit_keeps_other", unreg_one_bit_keeps_other, NULL },
	{ "private_file_page_untouched", private_file_page_untouched, NULL },
	{ "fork_private_neither_writes", fork_private_neither_writes, NULL },
	{ "cow_child_writes_first", cow_child_writes_first, NULL },
	{ "cow_parent_writes_first", cow_parent_writes_first, NULL },
	{ "cow_both_write", cow_both_write, NULL },
	{ "fork_shared_both_see", fork_shared_both_see, NULL },
	{ "fork_copies_every_registration", fork_copies_every_registration, NULL },
	{ "thread_shares_registrations", thread_shares_registrations, NULL },
	{ "munmap_enable_then_remap", munmap_enable_then_remap, PREFIX "munmap" },
	{ "unreg_unmapped_efault", unreg_unmapped_efault, NULL },
	{ "unreg_clears_and_stops", unreg_clears_and_stops, NULL },
	{ "del_after_unreg_and_close", del_after_unreg_and_close, NULL },
};

#define N_CHECKS ((int)(sizeof(CHECKS) / sizeof(CHECKS[0])))

/* Runs one check in a process of its own and prints its KTAP result. */
static void run_check(int number, const struct check *c)
{
	int fds[2], status, kmsg = kmsg_from_end();
	char stray[300];
	struct result r;
	ssize_t n;
	pid_t pid;

	if (pipe(fds)) {
		printf("not ok %d - %s # pipe: %s\n", number, c->name, strerror(errno));
		return;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("not ok %d - %s # fork: %s\n", number, c->name, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pid == 0) {
		close(fds[0]);
		result_fd = fds[1];
		c->run();
		send_pass();
		_exit(0);
	}
	close(fds[1]);
	memset(&r, 0, sizeof(r));
	n = read(fds[0], &r, sizeof(r));
	close(fds[0]);
	waitpid(pid, &status, 0);
	if (n != (ssize_t)sizeof(r)) {
		if (WIFSIGNALED(status))
			printf("not ok %d - %s # killed by signal %d (%s) before it reported\n",
			       number, c->name, WTERMSIG(status), strsignal(WTERMSIG(status)));
		else
			printf("not ok %d - %s # exited %d without a result\n", number, c->name,
			       WEXITSTATUS(status));
	} else if (kmsg >= 0 && stray_fault_warning(kmsg, c->fault_event, stray, sizeof(stray))) {
		printf("not ok %d - %s # the kernel warned of a failed fault for an event no check "
		       "unmaps: %s\n", number, c->name, stray);
	} else if (r.outcome == PASS) {
		printf("ok %d - %s\n", number, c->name);
	} else if (r.outcome == SKIP) {
		printf("ok %d - %s # SKIP %s\n", number, c->name, r.text);
	} else {
		printf("not ok %d - %s # %s\n", number, c->name, r.text);
	}
	fflush(stdout);
	if (kmsg >= 0)
		close(kmsg);
}

/* The byte order, said in the output: on big-endian the kernel's bit moves differ. */
static const char *byte_order(void)
{
	const uint16_t one = 1;
	unsigned char first;

	memcpy(&first, &one, 1);
	return first == 1 ? "little" : "big";
}

int main(int argc, char **argv)
{
	const char *d = getenv("ABI_CORE_DEADLINE_MS");
	int i, only = argc > 1;

	page_size = sysconf(_SC_PAGESIZE);
	if (d && atol(d) > 0)
		deadline_ms = atol(d);
	/* A check's helper writing to a check that is gone must not kill the check with it. */
	signal(SIGPIPE, SIG_IGN);
	printf("TAP version 13\n1..%d\n", only ? argc - 1 : N_CHECKS);
	printf("# pointer size %u, page size %ld, %s-endian; REG 0x%lx, UNREG 0x%lx, DEL 0x%lx; "
	       "deadline %ld ms\n", (unsigned)sizeof(void *), page_size,
	       byte_order(),
	       (unsigned long)DIAG_IOCSREG, (unsigned long)DIAG_IOCSUNREG,
	       (unsigned long)DIAG_IOCSDEL, deadline_ms);
	fflush(stdout);
	if (access("/dev/kmsg", R_OK))
		printf("# /dev/kmsg: %s: fault warnings are not checked per check\n", strerror(errno));
	if (access(DATA_FILE, R_OK | W_OK)) {
		printf("Bail out! %s: %s\n", DATA_FILE, strerror(errno));
		return 1;
	}
	if (only) {
		/* Named checks only, in the order given (for a person at the guest's shell). */
		for (i = 1; i < argc; i++) {
			int j;

			for (j = 0; j < N_CHECKS && strcmp(CHECKS[j].name, argv[i]); j++)
				;
			if (j == N_CHECKS)
				printf("not ok %d - %s # no such check\n", i, argv[i]);
			else
				run_check(i, &CHECKS[j]);
		}
		return 0;
	}
	for (i = 0; i < N_CHECKS; i++)
		run_check(i + 1, &CHECKS[i]);
	return 0;
}
