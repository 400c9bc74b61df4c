// SPDX-License-Identifier: MIT
//
// compat32: user_events from a 32-bit process on a 64-bit kernel (IA32 emulation).
//
// Built by the xtask with `gcc -m32 -static` against Debian's i386 libc, and run in the guest
// as a guest program; each check is a KTAP result, `guest::compat32::<check>`.
//
// The uapi computes its ioctl numbers with `_IOWR('*', 0, struct user_reg *)`: the size field
// is the size of a *pointer*, so a 32-bit process compiles 0xc0042a00 where a 64-bit one
// compiles 0xc0082a00. Both are computed here, not taken from a header, so the program says
// exactly which number it sent. The structures themselves are the same in both ABIs (packed,
// u64 addresses), so only the number differs.
//
// A check that finds the symptom of a known kernel bug says so in its result's directive,
// `# symptom NAME: ...` (NAME as in kernel-configs/kernels.toml), so that the host reports it
// as that bug and any other failure as a failure.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/ioctl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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

_Static_assert(sizeof(struct user_reg) == 28, "struct user_reg is 28 bytes in both ABIs");
_Static_assert(sizeof(struct user_unreg) == 16, "struct user_unreg is 16 bytes in both ABIs");

#define DIAG_IOC_MAGIC '*'
/* The uapi's numbers with the pointer size of a 32-bit (4) and a 64-bit (8) process. */
#define REG_WITH_PTR(n) _IOC(_IOC_READ | _IOC_WRITE, DIAG_IOC_MAGIC, 0, (n))
#define UNREG_WITH_PTR(n) _IOC(_IOC_WRITE, DIAG_IOC_MAGIC, 2, (n))

static const unsigned long REG32 = REG_WITH_PTR(4);
static const unsigned long REG64 = REG_WITH_PTR(8);
static const unsigned long UNREG32 = UNREG_WITH_PTR(4);

#define DATA_FILE "/sys/kernel/tracing/user_events_data"
#define EVENT32 "compat32_reg32"
#define EVENT64 "compat32_reg64"
#define ENABLE_FILE(name) "/sys/kernel/tracing/events/user_events/" name "/enable"
#define SYMPTOM "no-compat-ioctl"

/* The kernel writes the bit asynchronously after a COW fault: poll up to this long. */
#define DEADLINE_MS 10000

static int test_number;

static void ok(const char *name)
{
	printf("ok %d - %s\n", ++test_number, name);
	fflush(stdout);
}

static void not_ok(const char *name, const char *fmt, ...)
{
	va_list ap;

	printf("not ok %d - %s # ", ++test_number, name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void skip(const char *name, const char *why)
{
	printf("ok %d - %s # SKIP %s\n", ++test_number, name, why);
	fflush(stdout);
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits until bit `bit` of *word is `want`; 0 when it got there, -1 at the deadline. */
static int wait_bit(volatile uint32_t *word, int bit, int want)
{
	uint64_t end = now_ms() + DEADLINE_MS;
	struct timespec nap = { 0, 1000000 };

	for (;;) {
		if (((*word >> bit) & 1) == (uint32_t)want)
			return 0;
		if (now_ms() > end)
			return -1;
		nanosleep(&nap, NULL);
	}
}

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

/* 0, or -errno of the ioctl. */
static int reg(int fd, unsigned long number, const char *name_args, volatile uint32_t *word,
	       int bit)
{
	struct user_reg r;

	memset(&r, 0, sizeof(r));
	r.size = sizeof(r);
	r.enable_bit = bit;
	r.enable_size = sizeof(*word);
	r.enable_addr = (uint64_t)(uintptr_t)word;
	r.name_args = (uint64_t)(uintptr_t)name_args;
	return ioctl(fd, number, &r) < 0 ? -errno : 0;
}

static const char *describe(int err)
{
	static char buf[96];

	if (!err)
		return "registered";
	snprintf(buf, sizeof(buf), "errno %d (%s)", -err, strerror(-err));
	return buf;
}

int main(void)
{
	/* Each word on a page of its own: the fork check makes this one copy-on-write. */
	volatile uint32_t *word32 = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile uint32_t *word64 = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd, err32, err64, bit = 5;
	char why[160];

	printf("TAP version 13\n1..7\n");
	printf("# pointer size %u; REG 0x%lx (32-bit) and 0x%lx (64-bit); UNREG 0x%lx\n",
	       (unsigned)sizeof(void *), REG32, REG64, UNREG32);
	fflush(stdout);
	if (sizeof(void *) != 4) {
		printf("Bail out! built as a %u-byte-pointer program, not a 32-bit one\n",
		       (unsigned)sizeof(void *));
		return 1;
	}
	if (word32 == MAP_FAILED || word64 == MAP_FAILED) {
		printf("Bail out! mmap: %s\n", strerror(errno));
		return 1;
	}
	fd = open(DATA_FILE, O_RDWR);
	if (fd < 0) {
		printf("Bail out! open %s: %s\n", DATA_FILE, strerror(errno));
		return 1;
	}

	/* 1: the number a 32-bit build of the uapi header computes. */
	err32 = reg(fd, REG32, EVENT32 " u32 a", word32, bit);
	if (!err32)
		ok("reg_32bit_ioctl");
	else if (err32 == -ENOTTY)
		not_ok("reg_32bit_ioctl", "symptom " SYMPTOM ": DIAG_IOCSREG 0x%lx from a 32-bit "
		       "process gave %s: user_data_fops has no compat_ioctl", REG32,
		       describe(err32));
	else
		not_ok("reg_32bit_ioctl", "DIAG_IOCSREG 0x%lx gave %s", REG32, describe(err32));

	/* 2: the x86-64 number from the same process, for comparison: the same outcome. */
	err64 = reg(fd, REG64, EVENT64 " u32 a", word64, bit);
	if (err64 == err32)
		ok("reg_64bit_ioctl_same_as_32bit");
	else
		not_ok("reg_64bit_ioctl_same_as_32bit", "the 64-bit number 0x%lx: %s; the 32-bit "
		       "number 0x%lx: %s", REG64, describe(err64), REG32, describe(err32));
	printf("# REG 0x%lx: %s\n", REG64, describe(err64));

	/* 3, 4: the enable word follows the event, through tracefs. */
	if (err32) {
		snprintf(why, sizeof(why), "the 32-bit REG failed (%s)", describe(err32));
		skip("enable_sets_bit", why);
		skip("disable_clears_bit", why);
	} else {
		int e = write_file(ENABLE_FILE(EVENT32), "1");

		if (e)
			not_ok("enable_sets_bit", "write 1 to %s: %s", ENABLE_FILE(EVENT32),
			       strerror(-e));
		else if (wait_bit(word32, bit, 1))
			not_ok("enable_sets_bit", "bit %d of the word is still clear %d ms after the "
			       "enable (word 0x%x)", bit, DEADLINE_MS, *word32);
		else
			ok("enable_sets_bit");
		e = write_file(ENABLE_FILE(EVENT32), "0");
		if (e)
			not_ok("disable_clears_bit", "write 0 to %s: %s", ENABLE_FILE(EVENT32),
			       strerror(-e));
		else if (wait_bit(word32, bit, 0))
			not_ok("disable_clears_bit", "bit %d of the word is still set %d ms after the "
			       "disable (word 0x%x)", bit, DEADLINE_MS, *word32);
		else
			ok("disable_clears_bit");
	}

	/*
	 * 5: fork with the word in a MAP_PRIVATE page, both processes writing it first (COW):
	 * each must see its own copy follow the event.
	 */
	if (err32) {
		skip("fork_private_cow_both_follow", why);
	} else {
		int to_child[2], from_child[2], status;
		char c = 0;
		pid_t pid;

		if (pipe(to_child) || pipe(from_child)) {
			not_ok("fork_private_cow_both_follow", "pipe: %s", strerror(errno));
			goto unreg;
		}
		pid = fork();
		if (pid < 0) {
			not_ok("fork_private_cow_both_follow", "fork: %s", strerror(errno));
			goto unreg;
		}
		if (pid == 0) {
			/* A write of another bit breaks COW here, before the event changes. */
			*word32 |= 1u << 0;
			write(from_child[1], "r", 1);
			read(to_child[0], &c, 1);
			c = wait_bit(word32, bit, 1) ? 'E' : 'e';
			write(from_child[1], &c, 1);
			read(to_child[0], &c, 1);
			c = wait_bit(word32, bit, 0) ? 'D' : 'd';
			write(from_child[1], &c, 1);
			_exit(0);
		}
		read(from_child[0], &c, 1);
		*word32 |= 1u << 1;
		{
			int e1 = write_file(ENABLE_FILE(EVENT32), "1");
			int parent_on = !e1 && !wait_bit(word32, bit, 1);
			char child_on, child_off;
			int e0, parent_off;

			write(to_child[1], "g", 1);
			read(from_child[0], &child_on, 1);
			e0 = write_file(ENABLE_FILE(EVENT32), "0");
			parent_off = !e0 && !wait_bit(word32, bit, 0);
			write(to_child[1], "g", 1);
			read(from_child[0], &child_off, 1);
			waitpid(pid, &status, 0);
			if (parent_on && parent_off && child_on == 'e' && child_off == 'd')
				ok("fork_private_cow_both_follow");
			else
				not_ok("fork_private_cow_both_follow", "after COW: parent saw enable %s, "
				       "disable %s; child saw enable %s, disable %s (tracefs writes: "
				       "%d, %d)", parent_on ? "yes" : "no", parent_off ? "yes" : "no",
				       child_on == 'e' ? "yes" : "no", child_off == 'd' ? "yes" : "no",
				       e1, e0);
		}
	}

unreg:
	/* 6: UNREG with the 32-bit number clears the bit and stops the updates. */
	if (err32) {
		skip("unreg_32bit_ioctl", why);
	} else {
		struct user_unreg u;
		int e;

		memset(&u, 0, sizeof(u));
		u.size = sizeof(u);
		u.disable_bit = bit;
		u.disable_addr = (uint64_t)(uintptr_t)word32;
		e = ioctl(fd, UNREG32, &u) < 0 ? -errno : 0;
		/*
		 * The page is present and writable, so a kept enabler would be written within
		 * this very write(2): no wait is needed to see it.
		 */
		write_file(ENABLE_FILE(EVENT32), "1");
		if (e)
			not_ok("unreg_32bit_ioctl", "DIAG_IOCSUNREG 0x%lx gave %s", UNREG32,
			       describe(e));
		else if ((*word32 >> bit) & 1)
			not_ok("unreg_32bit_ioctl", "bit %d set again by an enable after UNREG "
			       "(word 0x%x)", bit, *word32);
		else
			ok("unreg_32bit_ioctl");
		write_file(ENABLE_FILE(EVENT32), "0");
	}

	/* 7: the 64-bit number's registration, when it worked, follows the event too. */
	if (err64) {
		snprintf(why, sizeof(why), "the 64-bit REG failed (%s)", describe(err64));
		skip("reg_64bit_ioctl_follows_enable", why);
	} else {
		int e1 = write_file(ENABLE_FILE(EVENT64), "1");
		int on = !e1 && !wait_bit(word64, bit, 1);
		int e0 = write_file(ENABLE_FILE(EVENT64), "0");
		int off = !e0 && !wait_bit(word64, bit, 0);

		if (on && off)
			ok("reg_64bit_ioctl_follows_enable");
		else
			not_ok("reg_64bit_ioctl_follows_enable", "enable seen: %s, disable seen: %s "
			       "(tracefs writes: %d, %d)", on ? "yes" : "no", off ? "yes" : "no", e1,
			       e0);
	}
	close(fd);
	return 0;
}
