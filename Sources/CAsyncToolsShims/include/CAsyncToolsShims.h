// The few things Swift on Linux cannot reach through Glibc: raw syscalls (pidfd), prctl, and the
// Swift concurrency runtime's global-enqueue hook. Each function does one thing; errno is left as
// the call set it.
#ifndef CASYNCTOOLSSHIMS_H
#define CASYNCTOOLSSHIMS_H

#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/// pidfd_open(2): a file descriptor referring to process `pid`, or -1 with errno (ENOSYS before Linux 5.3).
int asynctools_pidfd_open(pid_t pid, unsigned int flags);

/// pidfd_send_signal(2) without siginfo: -1 with errno on failure (ENOSYS before Linux 5.1).
int asynctools_pidfd_send_signal(int pidfd, int sig);

/// Names this process: the main thread's `comm`, which `ps`, `top` and `ss` show (at most 15 bytes
/// are kept) — prctl(PR_SET_NAME) on the main thread, /proc/self/task/<pid>/comm from another one.
int asynctools_set_process_name(const char *_Nonnull name);

// The environment a parent uses to hand a re-executed copy of itself its parent-death signal (see
// AsyncToolsProcess' ReexecutionEnvironment, which owns every other variable). The names live here
// because a constructor of this library reads them before any Swift code runs.
#define ASYNCTOOLS_ENV_PARENT_PID "ASYNCTOOLS_PARENT_PID"
#define ASYNCTOOLS_ENV_DEATH_SIGNAL "ASYNCTOOLS_DEATH_SIGNAL"
/// Names the role of a copy re-executed for library code that claims it later in `main`.
#define ASYNCTOOLS_ENV_ROLE "ASYNCTOOLS_ROLE"

// The fork server (fork_server.c): a copy of this program that stops in `.preinit_array`, before any
// library initialiser runs, and forks children on request over a unix socket (see AsyncToolsProcess'
// ForkServer). Its environment names the socket and the expected parent: "<fd>:<pid>".
#define ASYNCTOOLS_ENV_FORK_SERVER "ASYNCTOOLS_FORK_SERVER"
/// The first bytes a child of the fork server writes to its readiness pipe: this byte, then its pid
/// (an int32 in host byte order), in one write.
#define ASYNCTOOLS_FORK_SERVER_PID_BYTE 0x50
#define ASYNCTOOLS_FORK_SERVER_MAGIC 0x41544653u
/// The largest request (header, descriptor targets and environment) the server accepts.
#define ASYNCTOOLS_FORK_SERVER_MAX_REQUEST 196608
/// The most descriptors one request may carry (the kernel's SCM_MAX_FD is 253).
#define ASYNCTOOLS_FORK_SERVER_MAX_FDS 250
/// `flags` bit: the child leads a new process group.
#define ASYNCTOOLS_FORK_OWN_PROCESS_GROUP 1u
/// `flags` bit, for tests only: the server exits right after the fork, without replying (a server that
/// dies during a request).
#define ASYNCTOOLS_FORK_EXIT_WITHOUT_REPLY 2u

/// One fork request, followed by `descriptor_count` int32 targets (the child descriptor of each
/// descriptor attached with SCM_RIGHTS, in order; -1 for the working-directory descriptor) and by
/// `environment_bytes` bytes of NUL-terminated "NAME=value" strings. The reply is one int32: the
/// child's pid, or -errno.
struct asynctools_fork_request {
  uint32_t magic;
  uint32_t flags;
  uint64_t blocked_signals;  // bit n-1 for signal n
  uint32_t descriptor_count;
  int32_t ready_index;       // the attached descriptor that is the readiness pipe's write end
  int32_t cwd_index;         // the attached descriptor to fchdir to, or -1
  uint32_t closed_stdio;     // bit n: descriptor n (0, 1, 2) is closed in the parent, so in the child
  uint32_t environment_count;
  uint32_t environment_bytes;
};

/// 1 when this executable carries the fork server's pre-init hook (AsyncToolsProcess linked
/// statically, the normal case for SwiftPM); 0 otherwise (no fork server is possible then).
int asynctools_fork_server_available(void);

/// open(".", O_PATH | O_DIRECTORY | O_CLOEXEC): the working directory, to hand to a child.
int asynctools_open_working_directory(void);

/// socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): the fork server's channel.
int asynctools_socketpair_seqpacket(int *_Nonnull fds);

/// sendmsg(2) of one message with `count` descriptors attached (SCM_RIGHTS), MSG_NOSIGNAL, retried on EINTR.
ssize_t asynctools_send_with_descriptors(int sock, const void *_Nonnull bytes, size_t length, const int *_Nullable fds,
                                         int count);

/// Waits up to `timeout_ms` for one int32 message on `sock` and reads it: 0 on success, -1 on a
/// timeout, an error or end of file.
int asynctools_receive_int32(int sock, int timeout_ms, int32_t *_Nonnull value);

/// In a child of the fork server, replaces `environ` with the environment its parent asked for;
/// elsewhere does nothing. Called first thing by the load-time constructor.
void asynctools_fork_server_install_environment(void);

/// The parent-death signal this process armed at load time, before `main` (0 if none was asked
/// for), and the parent it expects in `*expected_parent`. At load time the constructor read and
/// removed ASYNCTOOLS_ENV_PARENT_PID / ASYNCTOOLS_ENV_DEATH_SIGNAL, called prctl(PR_SET_PDEATHSIG)
/// and then checked getppid(): a parent that died before the prctl made it raise the signal at once.
int asynctools_armed_parent_death_signal(pid_t *_Nonnull expected_parent);

/// The signals held since load time, as a bit set (bit n-1 for signal n), cleared by the call.
///
/// In a copy re-executed for a role (ASYNCTOOLS_ENV_ROLE set), every signal that is blocked at load
/// time (the parent's spawn blocked it) gets a handler that only records it. Blocking alone does not
/// keep such a signal until the program traps it: Swift's async `main` parks the main thread in
/// libdispatch's `sigsuspend` with an empty mask, where a pending signal is delivered with its default
/// action. Once the program has trapped the signal (libdispatch's signal source replaces the
/// handler), it takes what arrived before with this call.
uint64_t asynctools_take_held_signals(void);

/// Delivers `sig` to this process with its default action (unblocked, disposition reset) and, if it
/// survives that, exits with `status` — what a parent-death signal would have done.
void asynctools_die_by_signal(int sig, int status);

/// The path of this program's executable as resolved at load time (`readlink /proc/self/exe`
/// before `main`), or NULL if it could not be read. Re-executing it after the file was replaced
/// runs the new build; `/proc/self/exe` would keep running the old one.
const char *_Nullable asynctools_startup_executable_path(void);

/// epoll_create1(EPOLL_CLOEXEC).
int asynctools_epoll_create(void);

/// epoll_ctl(EPOLL_CTL_ADD) of `fd` for readability (level-triggered), tagged with `token`.
int asynctools_epoll_add(int epfd, int fd, uint64_t token);

/// epoll_ctl(EPOLL_CTL_DEL) of `fd`.
int asynctools_epoll_del(int epfd, int fd);

/// epoll_wait(2): writes the tokens of up to `max` ready descriptors to `tokens`; returns their
/// count, or -1 with errno (EINTR included).
int asynctools_epoll_wait(int epfd, uint64_t *_Nonnull tokens, int max, int timeout_ms);

/// eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK).
int asynctools_eventfd(void);

/// waitid(P_PIDFD, pidfd, …, options) (Linux 5.4): on success writes the siginfo's si_pid (0 when
/// WNOHANG found nothing), si_code (CLD_EXITED, CLD_KILLED, CLD_DUMPED …) and si_status.
int asynctools_waitid_pidfd(int pidfd, int options, pid_t *_Nonnull out_pid, int *_Nonnull out_code,
                            int *_Nonnull out_status);

/// waitid(P_PID, pid, …, options): the same outputs as `asynctools_waitid_pidfd`.
int asynctools_waitid_pid(pid_t pid, int options, pid_t *_Nonnull out_pid, int *_Nonnull out_code,
                          int *_Nonnull out_status);

/// posix_spawn_file_actions_addchdir_np (glibc 2.29): the child changes directory before exec.
int asynctools_spawn_file_actions_addchdir(posix_spawn_file_actions_t *_Nonnull actions, const char *_Nonnull path);

/// posix_spawn_file_actions_addclosefrom_np (glibc 2.34): the child closes every fd >= `from`.
int asynctools_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *_Nonnull actions, int from);

/// pipe2(2): a pipe whose ends get `flags` (O_CLOEXEC, O_NONBLOCK) atomically.
int asynctools_pipe2(int *_Nonnull fds, int flags);

/// pthread_setname_np(pthread_self(), name): names the calling thread (at most 15 bytes are kept).
int asynctools_set_thread_name(const char *_Nonnull name);

/// Address of the runtime's `swift_task_enqueueGlobal_hook` variable, or NULL if this runtime has none.
void *_Nullable *_Nullable asynctools_enqueue_global_hook_address(void);

/// Atomically replaces the enqueue hook with `desired` if it currently equals `expected`.
/// Returns true on success; otherwise writes the current value to `*actual` (if non-NULL).
bool asynctools_enqueue_global_hook_cas(void *_Nullable expected, void *_Nullable desired,
                                        void *_Nullable *_Nullable actual);

/// Reads the enqueue hook atomically.
void *_Nullable asynctools_enqueue_global_hook_load(void);

/// This thread's private marker slot (a C11 `_Thread_local`), used by the virtual-time driver to
/// recognise enqueues made on its own thread without a lock.
void *_Nullable asynctools_thread_marker_get(void);

/// Sets this thread's private marker slot.
void asynctools_thread_marker_set(void *_Nullable marker);

/// memfd_create(2) with MFD_CLOEXEC: an anonymous file, to be mmap'ed MAP_SHARED and passed to
/// other processes.
int asynctools_memfd_create(const char *_Nonnull name);

// Sequentially consistent atomics on a 64-bit integer that may live in memory shared between
// processes (an mmap'ed memfd), where Swift's `Atomic` (a stored property) cannot be placed.
int64_t asynctools_shared_load(const int64_t *_Nonnull address);
void asynctools_shared_store(int64_t *_Nonnull address, int64_t value);
/// Adds `delta` and returns the new value.
int64_t asynctools_shared_add(int64_t *_Nonnull address, int64_t delta);
/// Replaces `expected` with `desired`; returns whether it did.
bool asynctools_shared_compare_exchange(int64_t *_Nonnull address, int64_t expected, int64_t desired);

#ifdef __cplusplus
}
#endif

#endif
