// SPDX-License-Identifier: MIT
//
// ue-cinit: PID 1 of a foreign architecture's test VM (s390x, arm64), where the Rust guest
// cannot be built (no Rust std for those targets here). It does what ue-init and the runner
// do for guest test programs, and no more: mount what the programs need, run each program of
// the plan once with its output captured and a time limit, and report on the result channel
// with the records the host already reads (hello, start, end with the program's output,
// done), then end the VM.
//
// Cross-compiled statically by the xtask with the same function as every C guest program
// (`guest::c::build`). The plan is the harness's own /etc/ue-plan.json; this program reads
// its `guest_tests` (program, path, args, env, timeout_ms) with a small JSON reader.
//
// The result channel is a virtio-serial port named "ue.results" (the machines have one
// console UART), found under /sys/class/virtio-ports.

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define PLAN_PATH "/etc/ue-plan.json"
#define PORT_NAME "ue.results"
#define MARKER "ue-runner: "
/* A record is at most 256 KiB on the wire (result_channel::MAX_RECORD_LEN), escapes
 * included: a program's output keeps its beginning and its end within this. */
#define OUTPUT_HEAD (16 * 1024)
#define OUTPUT_TAIL (48 * 1024)

static int port = -1;
static int quiet_kmsg;

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ue-cinit: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static uint64_t now_us(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ---- a growable buffer, and JSON strings written into it ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return; /* out of memory: the record is cut, the host sees garbage */
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* A JSON string of n bytes, quotes included. Bytes that are not valid UTF-8 become U+FFFD, as
 * the host's from_utf8_lossy would make them. */
static void put_json(struct buf *b, const char *s, size_t n)
{
	puts_(b, "\"");
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			put(b, e, 2);
			i++;
		} else if (c == '\n') {
			puts_(b, "\\n");
			i++;
		} else if (c == '\t') {
			puts_(b, "\\t");
			i++;
		} else if (c == '\r') {
			puts_(b, "\\r");
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			putf(b, "\\u%04x", c);
			i++;
		} else if (c < 0x80) {
			put(b, (const char *)&s[i], 1);
			i++;
		} else {
			/* A whole UTF-8 sequence, or U+FFFD for a bad byte. */
			size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
			int good = len && i + len <= n;
			for (size_t k = 1; good && k < len; k++)
				good = ((unsigned char)s[i + k] & 0xc0) == 0x80;
			if (good) {
				put(b, &s[i], len);
				i += len;
			} else {
				puts_(b, "\xef\xbf\xbd");
				i++;
			}
		}
	}
	puts_(b, "\"");
}

static void put_jsons(struct buf *b, const char *s)
{
	put_json(b, s, strlen(s));
}

/* One record, one line, on the result port. */
static void send_record(struct buf *b)
{
	puts_(b, "\n");
	size_t off = 0;
	while (port >= 0 && off < b->len) {
		ssize_t w = write(port, b->p + off, b->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			say("write to the result port: %s", strerror(errno));
			break;
		}
		off += (size_t)w;
	}
	free(b->p);
	*b = (struct buf){ 0 };
}

static void kmsg(const char *what, const char *name)
{
	if (quiet_kmsg)
		return;
	int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char line[512];
	int n = snprintf(line, sizeof line, "<4>" MARKER "%s %s\n", what, name);
	if (n > 0)
		(void)!write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
	close(fd);
}

/* ---- a small JSON reader: enough for the plan ---- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
	enum jtype t;
	double num;
	char *str;
	struct jv **items; /* array items, or object values */
	char **keys;	   /* object keys */
	size_t n;
};

static void skip_ws(const char **p)
{
	while (**p == ' ' || **p == '\n' || **p == '\r' || **p == '\t')
		(*p)++;
}

static struct jv *jparse(const char **p, int depth);

static char *jstring(const char **p)
{
	if (**p != '"')
		return NULL;
	(*p)++;
	struct buf b = { 0 };
	puts_(&b, "");
	while (**p && **p != '"') {
		if (**p == '\\') {
			(*p)++;
			char c = **p;
			if (!c)
				break;
			(*p)++;
			switch (c) {
			case 'n': puts_(&b, "\n"); break;
			case 't': puts_(&b, "\t"); break;
			case 'r': puts_(&b, "\r"); break;
			case 'b': puts_(&b, "\b"); break;
			case 'f': puts_(&b, "\f"); break;
			case 'u': {
				unsigned v = 0;
				for (int k = 0; k < 4 && **p; k++, (*p)++) {
					char h = **p;
					v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
				}
				/* The plan's text is ASCII; anything else is kept as a byte. */
				char ch = (char)(v < 0x80 ? v : '?');
				put(&b, &ch, 1);
				break;
			}
			default: put(&b, &c, 1);
			}
		} else {
			put(&b, *p, 1);
			(*p)++;
		}
	}
	if (**p != '"') {
		free(b.p);
		return NULL;
	}
	(*p)++;
	return b.p;
}

static struct jv *jnew(enum jtype t)
{
	struct jv *v = calloc(1, sizeof *v);
	if (v)
		v->t = t;
	return v;
}

static int jpush(struct jv *v, char *key, struct jv *item)
{
	struct jv **items = realloc(v->items, (v->n + 1) * sizeof *items);
	if (!items)
		return -1;
	v->items = items;
	if (v->t == J_OBJ) {
		char **keys = realloc(v->keys, (v->n + 1) * sizeof *keys);
		if (!keys)
			return -1;
		v->keys = keys;
		v->keys[v->n] = key;
	}
	v->items[v->n++] = item;
	return 0;
}

static struct jv *jparse(const char **p, int depth)
{
	if (depth > 32)
		return NULL;
	skip_ws(p);
	char c = **p;
	if (c == '{' || c == '[') {
		struct jv *v = jnew(c == '{' ? J_OBJ : J_ARR);
		char close = c == '{' ? '}' : ']';
		(*p)++;
		skip_ws(p);
		if (**p == close) {
			(*p)++;
			return v;
		}
		for (;;) {
			char *key = NULL;
			if (v->t == J_OBJ) {
				skip_ws(p);
				key = jstring(p);
				skip_ws(p);
				if (!key || **p != ':')
					return NULL;
				(*p)++;
			}
			struct jv *item = jparse(p, depth + 1);
			if (!item || jpush(v, key, item))
				return NULL;
			skip_ws(p);
			if (**p == ',') {
				(*p)++;
				continue;
			}
			if (**p == close) {
				(*p)++;
				return v;
			}
			return NULL;
		}
	}
	if (c == '"') {
		struct jv *v = jnew(J_STR);
		v->str = jstring(p);
		return v->str ? v : NULL;
	}
	if (!strncmp(*p, "true", 4) || !strncmp(*p, "false", 5)) {
		struct jv *v = jnew(J_BOOL);
		v->num = **p == 't';
		*p += **p == 't' ? 4 : 5;
		return v;
	}
	if (!strncmp(*p, "null", 4)) {
		*p += 4;
		return jnew(J_NULL);
	}
	char *end;
	double d = strtod(*p, &end);
	if (end == *p)
		return NULL;
	*p = end;
	struct jv *v = jnew(J_NUM);
	v->num = d;
	return v;
}

static struct jv *jget(const struct jv *o, const char *key)
{
	if (!o || o->t != J_OBJ)
		return NULL;
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->keys[i], key))
			return o->items[i];
	return NULL;
}

static const char *jstr(const struct jv *v)
{
	return v && v->t == J_STR ? v->str : "";
}

/* ---- the VM ---- */

static void mount_all(void)
{
	static const char *const m[][3] = {
		{ "proc", "/proc", "proc" },
		{ "sysfs", "/sys", "sysfs" },
		{ "devtmpfs", "/dev", "devtmpfs" },
		{ "tracefs", "/sys/kernel/tracing", "tracefs" },
		{ "tmpfs", "/tmp", "tmpfs" },
		/* The failslab knobs; a kernel without debugfs has no mount point for it. */
		{ "debugfs", "/sys/kernel/debug", "debugfs" },
	};
	for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
		struct stat st;
		if (!strcmp(m[i][2], "debugfs") && stat(m[i][1], &st) != 0)
			continue;
		mkdir(m[i][1], 0755);
		if (mount(m[i][0], m[i][1], m[i][2], 0, NULL) != 0)
			say("mount %s on %s: %s", m[i][2], m[i][1], strerror(errno));
	}
}

/* /dev/<port> of the virtio-serial port named PORT_NAME. The host names the port once the
 * driver has set it up, which may come a little after init starts: looked for a while. */
static int open_port(void)
{
	for (int tries = 0; tries < 200; tries++) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char path[300], name[64] = "";
			snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
			FILE *f = fopen(path, "r");
			if (!f)
				continue;
			if (!fgets(name, sizeof name, f))
				name[0] = 0;
			fclose(f);
			name[strcspn(name, "\n")] = 0;
			if (strcmp(name, PORT_NAME))
				continue;
			snprintf(path, sizeof path, "/dev/%s", e->d_name);
			closedir(d);
			int fd = open(path, O_RDWR | O_CLOEXEC);
			if (fd < 0)
				say("open %s: %s", path, strerror(errno));
			return fd;
		}
		if (d)
			closedir(d);
		usleep(50 * 1000);
	}
	say("no virtio-serial port named %s under /sys/class/virtio-ports", PORT_NAME);
	return -1;
}

static const char *signal_name(int sig)
{
	switch (sig) {
	case SIGSEGV: return "SIGSEGV";
	case SIGBUS: return "SIGBUS";
	case SIGABRT: return "SIGABRT";
	case SIGKILL: return "SIGKILL";
	case SIGILL: return "SIGILL";
	case SIGFPE: return "SIGFPE";
	case SIGTERM: return "SIGTERM";
	default: return "another signal";
	}
}

/* Runs one program of the plan to its end or its limit; sends its start and end. */
static void run_program(const struct jv *g)
{
	const char *program = jstr(jget(g, "program"));
	const char *path = jstr(jget(g, "path"));
	const struct jv *limit = jget(g, "timeout_ms");
	uint64_t timeout_ms = limit && limit->t == J_NUM ? (uint64_t)limit->num : 30000;
	char name[256];
	snprintf(name, sizeof name, "guest::%s", program);

	struct buf rec = { 0 };
	puts_(&rec, "{\"kind\":\"start\",\"name\":");
	put_jsons(&rec, name);
	puts_(&rec, "}");
	send_record(&rec);
	kmsg("start", name);

	const char *style = jstr(jget(jget(g, "style"), "style"));
	uint64_t started = now_us(CLOCK_MONOTONIC);
	struct buf out = { 0 };
	puts_(&out, "");
	char message[256] = "";
	const char *outcome = "fail";
	if (strcmp(style, "program")) {
		snprintf(message, sizeof message,
			 "the C guest of this architecture runs programs whole; a %s program needs the x86_64 guest",
			 style);
		goto end;
	}

	/* argv: the path and the plan's args; envp: PATH, HOME and the plan's env. */
	const struct jv *args = jget(g, "args");
	const struct jv *env = jget(g, "env");
	size_t na = args && args->t == J_ARR ? args->n : 0;
	size_t ne = env && env->t == J_ARR ? env->n : 0;
	char **argv = calloc(na + 2, sizeof *argv);
	char **envp = calloc(ne + 3, sizeof *envp);
	argv[0] = (char *)path;
	for (size_t i = 0; i < na; i++)
		argv[i + 1] = (char *)jstr(args->items[i]);
	envp[0] = "PATH=/bin:/usr/bin";
	envp[1] = "HOME=/tmp";
	for (size_t i = 0; i < ne; i++) {
		const struct jv *kv = env->items[i];
		if (kv->t != J_ARR || kv->n != 2)
			continue;
		size_t len = strlen(jstr(kv->items[0])) + strlen(jstr(kv->items[1])) + 2;
		envp[i + 2] = malloc(len);
		snprintf(envp[i + 2], len, "%s=%s", jstr(kv->items[0]), jstr(kv->items[1]));
	}

	int fds[2];
	if (pipe2(fds, O_CLOEXEC)) {
		snprintf(message, sizeof message, "pipe: %s", strerror(errno));
		goto end;
	}
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(message, sizeof message, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		goto end;
	}
	if (pid == 0) {
		setpgid(0, 0);
		if (chdir("/tmp"))
			_exit(126);
		int null = open("/dev/null", O_RDONLY);
		dup2(null, 0);
		dup2(fds[1], 1);
		dup2(fds[1], 2);
		execve(path, argv, envp);
		dprintf(2, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	/* Output beyond the head is kept in a ring of OUTPUT_TAIL bytes. */
	char *tail = malloc(OUTPUT_TAIL);
	size_t tail_len = 0, tail_at = 0, cut = 0;
	int status = 0, exited = 0, timed_out = 0, open_pipe = 1;
	uint64_t exited_at = 0;
	for (;;) {
		pid_t r;
		while ((r = waitpid(-1, &status, WNOHANG)) > 0) {
			if (r == pid) {
				exited = 1;
				exited_at = now_us(CLOCK_MONOTONIC);
			}
		}
		if (exited && (!open_pipe || now_us(CLOCK_MONOTONIC) - exited_at > 500000))
			break; /* a grandchild may hold the pipe: what it wrote by now is kept */
		if (!exited && !timed_out &&
		    now_us(CLOCK_MONOTONIC) - started > timeout_ms * 1000) {
			timed_out = 1;
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
		}
		struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
		if (open_pipe && poll(&pfd, 1, 20) > 0) {
			char chunk[4096];
			ssize_t n = read(fds[0], chunk, sizeof chunk);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
				open_pipe = 0;
			} else if (n > 0) {
				for (ssize_t i = 0; i < n; i++) {
					if (out.len < OUTPUT_HEAD) {
						put(&out, &chunk[i], 1);
						continue;
					}
					if (tail_len == OUTPUT_TAIL)
						cut++;
					else
						tail_len++;
					tail[tail_at] = chunk[i];
					tail_at = (tail_at + 1) % OUTPUT_TAIL;
				}
			}
		} else if (!open_pipe) {
			usleep(20 * 1000);
		}
	}
	close(fds[0]);
	if (cut)
		putf(&out, "\n[... %zu bytes of output cut ...]\n", cut);
	for (size_t i = 0; i < tail_len; i++)
		put(&out, &tail[(tail_at + OUTPUT_TAIL - tail_len + i) % OUTPUT_TAIL], 1);
	free(tail);
	if (timed_out)
		snprintf(message, sizeof message,
			 "timed out after %llu ms (its limit, --guest-test-timeout); killed",
			 (unsigned long long)timeout_ms);
	else if (WIFSIGNALED(status))
		snprintf(message, sizeof message, "crashed: killed by signal %d (%s)",
			 WTERMSIG(status), signal_name(WTERMSIG(status)));
	else if (WIFEXITED(status) && WEXITSTATUS(status))
		snprintf(message, sizeof message, "exited with status %d", WEXITSTATUS(status));
	else
		outcome = "pass";

end:
	kmsg("end", name);
	puts_(&rec, "{\"kind\":\"end\",\"name\":");
	put_jsons(&rec, name);
	putf(&rec, ",\"outcome\":\"%s\",\"message\":", outcome);
	put_jsons(&rec, message);
	putf(&rec, ",\"duration_us\":%llu,\"output\":",
	     (unsigned long long)(now_us(CLOCK_MONOTONIC) - started));
	put_json(&rec, out.p ? out.p : "", out.len);
	puts_(&rec, "}");
	send_record(&rec);
	free(out.p);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	struct buf b = { 0 };
	char chunk[4096];
	size_t n;
	puts_(&b, "");
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		put(&b, chunk, n);
	fclose(f);
	return b.p;
}

int main(int argc, char **argv)
{
	/* `ue-cinit --plan FILE` off a VM: the records on stdout, nothing mounted, no reboot
	 * (the xtask's own tests read them with the host's parser). */
	int vm = getpid() == 1;
	const char *plan_path = PLAN_PATH;
	if (!vm && argc == 3 && !strcmp(argv[1], "--plan")) {
		plan_path = argv[2];
		port = 1;
		quiet_kmsg = 1;
	} else if (!vm) {
		say("this is a test VM's init; it runs as PID 1 (or: ue-cinit --plan FILE)");
		return 2;
	} else {
		mount_all();
		port = open_port();
	}
	if (port >= 0 && isatty(port)) {
		struct termios t;
		if (!tcgetattr(port, &t)) {
			cfmakeraw(&t);
			tcsetattr(port, TCSANOW, &t);
		}
	}
	char *text = read_file(plan_path);
	const char *p = text ? text : "";
	struct jv *plan = text ? jparse(&p, 0) : NULL;
	if (!plan)
		say("cannot read the plan %s", plan_path);
	const struct jv *tests = jget(plan, "guest_tests");
	size_t n = tests && tests->t == J_ARR ? tests->n : 0;

	struct utsname u;
	uname(&u);
	struct stat st;
	int user_events = stat("/sys/kernel/tracing/user_events_data", &st) == 0;
	struct buf rec = { 0 };
	puts_(&rec, "{\"kind\":\"hello\",\"kernel_release\":");
	put_jsons(&rec, u.release);
	putf(&rec, ",\"uptime_ms\":%llu,\"planned\":%zu,\"user_events\":%s}",
	     (unsigned long long)(now_us(CLOCK_BOOTTIME) / 1000), n,
	     user_events ? "true" : "false");
	send_record(&rec);

	for (size_t i = 0; i < n; i++)
		run_program(tests->items[i]);

	putf(&rec, "{\"kind\":\"done\",\"uptime_ms\":%llu}",
	     (unsigned long long)(now_us(CLOCK_BOOTTIME) / 1000));
	send_record(&rec);
	if (!vm)
		return 0;
	if (port >= 0)
		fsync(port);
	sync();
	/* QEMU runs with -no-reboot: a reboot request ends the VM. Should it fail, returning
	 * from PID 1 panics the kernel, and panic=-1 ends the VM the same way. */
	reboot(RB_AUTOBOOT);
	return 1;
}
