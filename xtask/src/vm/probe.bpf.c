// Tiny BPF programs, one per object, that tell which program types a kernel accepts. Each counts
// its runs in `hits`. Built by `cargo xtask vm` with clang -target bpf; probe_loader.c loads,
// attaches and triggers each one on the host and in every guest. Exactly one PROBE_* macro is
// defined per build.
// No kernel headers: the few kernel types used are declared here with CO-RE relocations, so the
// same object loads on every kernel whose BTF has these fields.
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))

char LICENSE[] SEC("license") = "GPL";

struct path {
	void *mnt;
} __attribute__((preserve_access_index));

struct file {
	struct path f_path;
} __attribute__((preserve_access_index));

__u64 hits;

static long (*bpf_d_path)(struct path *path, char *buf, __u32 sz) = (void *)147;

#if defined(PROBE_TP_BTF)
SEC("tp_btf/sched_process_exec") int probe(__u64 *ctx) { __sync_fetch_and_add(&hits, 1); return 0; }
#elif defined(PROBE_RAW_TP)
SEC("raw_tp/sched_process_exec") int probe(__u64 *ctx) { __sync_fetch_and_add(&hits, 1); return 0; }
#elif defined(PROBE_FENTRY)
SEC("fentry/security_file_open") int probe(__u64 *ctx) { __sync_fetch_and_add(&hits, 1); return 0; }
#elif defined(PROBE_FEXIT)
SEC("fexit/security_file_open") int probe(__u64 *ctx) { __sync_fetch_and_add(&hits, 1); return 0; }
#elif defined(PROBE_FENTRY_D_PATH)
SEC("fentry/security_file_open") int probe(__u64 *ctx)
{
	struct file *file = (struct file *)ctx[0];
	char buf[64] = {}; // 5.10 wants initialised memory for the buffer argument
	bpf_d_path(&file->f_path, buf, sizeof(buf));
	__sync_fetch_and_add(&hits, 1);
	return 0;
}
#elif defined(PROBE_LSM)
SEC("lsm/file_open") int probe(__u64 *ctx) { __sync_fetch_and_add(&hits, 1); return 0; }
#elif defined(PROBE_LSM_SLEEPABLE)
SEC("lsm.s/file_open") int probe(__u64 *ctx) { __sync_fetch_and_add(&hits, 1); return 0; }
#elif defined(PROBE_LSM_D_PATH_FILE_OPEN)
SEC("lsm/file_open") int probe(__u64 *ctx)
{
	struct file *file = (struct file *)ctx[0];
	char buf[64] = {}; // 5.10 wants initialised memory for the buffer argument
	bpf_d_path(&file->f_path, buf, sizeof(buf));
	__sync_fetch_and_add(&hits, 1);
	return 0;
}
#elif defined(PROBE_LSM_D_PATH_PATH_UNLINK)
SEC("lsm/path_unlink") int probe(__u64 *ctx)
{
	char buf[64] = {}; // 5.10 wants initialised memory for the buffer argument
	bpf_d_path((struct path *)ctx[0], buf, sizeof(buf));
	__sync_fetch_and_add(&hits, 1);
	return 0;
}
#else
#error "define one PROBE_* macro"
#endif
