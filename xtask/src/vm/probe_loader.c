// Loads, attaches and triggers each BPF probe object given on the command line, then reads how
// many times its program ran (the `hits` counter in the object's .bss). Prints one line per object:
//   VMPROBE <name>=ok hits=<n>
//   VMPROBE <name>=fail <stage>: <reason>     (stage: open, load, attach, fire)
// Built by `cargo xtask vm` with the host's cc and libbpf; runs on the host and in every guest.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// The last line of the verifier log that says why (not the statistics lines after it).
static char verifier_reason[512];

static int capture_log(enum libbpf_print_level level, const char *format, va_list args)
{
	static char message[65536];
	(void)level;
	vsnprintf(message, sizeof(message), format, args);
	if (!strstr(message, "-- BEGIN PROG LOAD LOG --"))
		return 0;
	for (char *line = strtok(message, "\n"); line; line = strtok(NULL, "\n")) {
		if (strstr(line, "PROG LOAD LOG --") || !strncmp(line, "processed ", 10) ||
		    !strncmp(line, "verification time", 17) || !*line)
			continue;
		snprintf(verifier_reason, sizeof(verifier_reason), "%s", line);
	}
	return 0;
}

// What fires every probe: open a file, create and unlink a file, exec a program.
static void trigger(void)
{
	char path[64];
	int fd = open("/proc/self/status", O_RDONLY);
	if (fd >= 0)
		close(fd);
	snprintf(path, sizeof(path), "/tmp/vmprobe.%d", getpid());
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	if (fd >= 0)
		close(fd);
	unlink(path);
	pid_t child = fork();
	if (child == 0) {
		execl("/bin/sh", "sh", "-c", ":", (char *)NULL);
		_exit(127);
	}
	if (child > 0)
		waitpid(child, NULL, 0);
}

static long long read_hits(struct bpf_object *object)
{
	struct bpf_map *map;
	bpf_object__for_each_map(map, object) {
		const char *name = bpf_map__name(map);
		size_t length = strlen(name);
		if (length < 4 || strcmp(name + length - 4, ".bss"))
			continue;
		unsigned long long value[8] = {0};
		int key = 0;
		if (bpf_map__value_size(map) > sizeof(value) ||
		    bpf_map_lookup_elem(bpf_map__fd(map), &key, value))
			return -1;
		return (long long)value[0];
	}
	return -1;
}

static void fail(const char *name, const char *stage, int error)
{
	printf("VMPROBE %s=fail %s: %s%s%s\n", name, stage, strerror(error < 0 ? -error : error),
	       *verifier_reason ? " | " : "", verifier_reason);
}

static void probe(const char *path)
{
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", path);
	char *name = basename(copy);
	char *dot = strrchr(name, '.');
	if (dot)
		*dot = 0;
	verifier_reason[0] = 0;

	struct bpf_object *object = bpf_object__open_file(path, NULL);
	if (!object) {
		fail(name, "open", errno);
		return;
	}
	int error = bpf_object__load(object);
	if (error) {
		fail(name, "load", error);
		bpf_object__close(object);
		return;
	}
	struct bpf_program *program = bpf_object__next_program(object, NULL);
	struct bpf_link *link = program ? bpf_program__attach(program) : NULL;
	if (!link) {
		fail(name, "attach", errno);
		bpf_object__close(object);
		return;
	}
	trigger();
	long long hits = read_hits(object);
	if (hits > 0)
		printf("VMPROBE %s=ok hits=%lld\n", name, hits);
	else
		printf("VMPROBE %s=fail fire: ran %lld times after open, unlink and exec\n", name, hits);
	bpf_link__destroy(link);
	bpf_object__close(object);
}

int main(int argc, char **argv)
{
	libbpf_set_print(capture_log);
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 1; i < argc; i++)
		probe(argv[i]);
	return 0;
}
