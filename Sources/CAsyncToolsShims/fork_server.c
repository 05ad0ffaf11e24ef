// The fork server: a copy of an AsyncToolsProcess program that stops at the very start of its
// life — in `.preinit_array`, before any library initialiser (the Swift runtime, libdispatch,
// libstdc++) has run — and forks children on request. Each child returns from the pre-init hook and
// goes through the rest of the program's start-up (library initialisers, our load-time constructor,
// `main`) as if it had just been executed, without paying the dynamic loader again.
//
// Why that point: a process forked *after* the Swift runtime or libdispatch initialised keeps their
// thread-local caches of the thread id (Swift's `ulock`, libdispatch's TSD), which they use as the
// owner of priority-inheriting futexes: in the child those ids are the server's, and a contended
// lock then fails to unlock. At pre-init time none of that exists yet, and the server never starts
// a thread.
//
// Why `clone3(CLONE_PARENT)`: the child becomes a child of the *requesting* process (the server's
// parent), so it is waited for, signalled and reaped by the parent's own pidfd machinery, and its
// parent-death signal follows the parent, exactly as for a re-executed child. CLONE_CHILD_SETTID /
// CLONE_CHILD_CLEARTID on glibc's thread-id slot (PR_GET_TID_ADDRESS) and the robust-list
// re-registration do for the child what glibc's own `fork` does.
#define _GNU_SOURCE
#include "CAsyncToolsShims.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__linux__)
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static int asynctools_fork_server_hook_ran = 0;
/// In a child of the server: the environment the parent asked for, installed by the load-time constructor.
static char **asynctools_fork_server_environment = NULL;

int asynctools_fork_server_available(void) { return asynctools_fork_server_hook_ran; }

void asynctools_fork_server_install_environment(void) {
  if (asynctools_fork_server_environment != NULL) {
    environ = asynctools_fork_server_environment;
    asynctools_fork_server_environment = NULL;
  }
}

int asynctools_open_working_directory(void) { return open(".", O_PATH | O_DIRECTORY | O_CLOEXEC); }

int asynctools_socketpair_seqpacket(int *fds) {
  return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds);
}

ssize_t asynctools_send_with_descriptors(int sock, const void *bytes, size_t length, const int *fds, int count) {
  if (count < 0 || count > ASYNCTOOLS_FORK_SERVER_MAX_FDS) {
    errno = EINVAL;
    return -1;
  }
  union {
    char buffer[CMSG_SPACE(sizeof(int) * ASYNCTOOLS_FORK_SERVER_MAX_FDS)];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof(control));
  struct iovec iov = {(void *)bytes, length};
  struct msghdr message;
  memset(&message, 0, sizeof(message));
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (count > 0) {
    message.msg_control = control.buffer;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)count);
    struct cmsghdr *header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)count);
    memcpy(CMSG_DATA(header), fds, sizeof(int) * (size_t)count);
  }
  ssize_t sent;
  do {
    sent = sendmsg(sock, &message, MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  return sent;
}

int asynctools_receive_int32(int sock, int timeout_ms, int32_t *value) {
  struct pollfd entry = {sock, POLLIN, 0};
  int ready;
  do {
    ready = poll(&entry, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return -1;
  ssize_t received;
  do {
    received = recv(sock, value, sizeof(*value), MSG_DONTWAIT);
  } while (received < 0 && errno == EINTR);
  return received == (ssize_t)sizeof(*value) ? 0 : -1;
}

/// The request buffer: one message of the parent, kept in the server's memory (and so in every
/// child's copy of it, where the environment strings stay valid for the life of the child).
static char asynctools_request[ASYNCTOOLS_FORK_SERVER_MAX_REQUEST];

static ssize_t send_reply(int sock, int32_t value) {
  ssize_t sent;
  do {
    sent = send(sock, &value, sizeof(value), MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  return sent;
}

/// In the child, still inside the pre-init hook: becomes the process the parent asked for.
/// Returns 0 on success; on failure the child exits with 126 (reported as "died before ready").
static void become_child(const struct asynctools_fork_request *request, const int32_t *targets, const int *fds,
                         int count, char *environment, void *robust_head, size_t robust_length) {
  // What glibc's fork does for the child's thread: the kernel's robust-futex list.
  if (robust_head != NULL) syscall(SYS_set_robust_list, robust_head, robust_length);

  // Tell the parent who we are before anything else: if the server dies before its reply, the
  // parent still learns this child's pid (it is the parent's child, which only it may reap).
  if (request->ready_index >= 0 && request->ready_index < count) {
    char message[1 + sizeof(int32_t)];
    int32_t pid = (int32_t)getpid();
    message[0] = ASYNCTOOLS_FORK_SERVER_PID_BYTE;
    memcpy(message + 1, &pid, sizeof(pid));
    ssize_t written;
    do {
      written = write(fds[request->ready_index], message, sizeof(message));
    } while (written < 0 && errno == EINTR);
  }

  if (request->cwd_index >= 0 && request->cwd_index < count && fchdir(fds[request->cwd_index]) != 0) _exit(126);

  // Descriptors: copy every source above every target first (so swapped mappings work), then dup2.
  int highest = 2;
  for (int i = 0; i < count; i++) {
    if (targets[i] > highest) highest = targets[i];
  }
  int copies[ASYNCTOOLS_FORK_SERVER_MAX_FDS];
  for (int i = 0; i < count; i++) {
    copies[i] = -1;
    if (targets[i] < 0) continue;
    copies[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, highest + 1);
    if (copies[i] < 0) _exit(126);
  }
  for (int fd = 0; fd <= 2; fd++) {
    if (request->closed_stdio & (1u << fd)) close(fd);
  }
  for (int i = 0; i < count; i++) {
    if (targets[i] >= 0 && dup2(copies[i], targets[i]) < 0) _exit(126);
  }
  // Everything else goes: the server's socket, the received descriptors, the copies.
  int keep[ASYNCTOOLS_FORK_SERVER_MAX_FDS + 3];
  int kept = 0;
  for (int i = 0; i < count; i++) {
    if (targets[i] >= 3) keep[kept++] = targets[i];
  }
  // Sort the kept targets (few: insertion sort), then close the gaps between them.
  for (int i = 1; i < kept; i++) {
    for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
      int swap = keep[j];
      keep[j] = keep[j - 1];
      keep[j - 1] = swap;
    }
  }
  unsigned int from = 3;
  for (int i = 0; i < kept; i++) {
    if ((unsigned int)keep[i] > from) syscall(SYS_close_range, from, (unsigned int)keep[i] - 1, 0);
    from = (unsigned int)keep[i] + 1;
  }
  syscall(SYS_close_range, from, ~0U, 0);

  // Signals: every disposition back to the default, the requested mask.
  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &action, NULL);
  }
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig = 1; sig <= 64; sig++) {
    if (request->blocked_signals & ((uint64_t)1 << (sig - 1))) sigaddset(&mask, sig);
  }
  sigprocmask(SIG_SETMASK, &mask, NULL);

  if ((request->flags & ASYNCTOOLS_FORK_OWN_PROCESS_GROUP) && setpgid(0, 0) != 0) _exit(126);

  // The environment: installed by the load-time constructor (libc's own start-up, which runs after
  // this hook, would replace `environ` with the server's).
  char **variables = malloc(((size_t)request->environment_count + 1) * sizeof(char *));
  if (variables == NULL) _exit(126);
  char *cursor = environment;
  for (uint32_t i = 0; i < request->environment_count; i++) {
    variables[i] = cursor;
    cursor += strlen(cursor) + 1;
  }
  variables[request->environment_count] = NULL;
  asynctools_fork_server_environment = variables;
}

/// The server loop. Returns only in a child (which then carries on with the program's start-up).
static void serve(int sock) {
  int *tid_address = NULL;
  void *robust_head = NULL;
  size_t robust_length = 0;
  if (prctl(PR_GET_TID_ADDRESS, &tid_address, 0, 0, 0) != 0 || tid_address == NULL) {
    send_reply(sock, -(errno ? errno : EINVAL));
    _exit(0);
  }
  if (syscall(SYS_get_robust_list, 0, &robust_head, &robust_length) != 0) robust_head = NULL;
  // A terminal's Ctrl-C or a hang-up is the parent's business: the server lives until the parent
  // closes the socket or dies (parent-death signal SIGKILL).
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTSTP, SIG_IGN);
  if (send_reply(sock, 0) < 0) _exit(0);

  union {
    char buffer[CMSG_SPACE(sizeof(int) * ASYNCTOOLS_FORK_SERVER_MAX_FDS)];
    struct cmsghdr align;
  } control;
  for (;;) {
    struct iovec iov = {asynctools_request, sizeof(asynctools_request)};
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.buffer;
    message.msg_controllen = sizeof(control.buffer);
    ssize_t length = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
    if (length < 0 && errno == EINTR) continue;
    if (length <= 0) _exit(0);  // the parent closed its end (or is gone)

    int fds[ASYNCTOOLS_FORK_SERVER_MAX_FDS];
    int count = 0;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL; header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
      int received = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < received && count < ASYNCTOOLS_FORK_SERVER_MAX_FDS; i++) {
        memcpy(&fds[count++], CMSG_DATA(header) + i * sizeof(int), sizeof(int));
      }
    }

    const struct asynctools_fork_request *request = (const void *)asynctools_request;
    int valid = (size_t)length >= sizeof(*request) && request->magic == ASYNCTOOLS_FORK_SERVER_MAGIC &&
                !(message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) && request->descriptor_count == (uint32_t)count &&
                sizeof(*request) + (size_t)count * sizeof(int32_t) + request->environment_bytes == (size_t)length;
    if (!valid) {
      for (int i = 0; i < count; i++) close(fds[i]);
      if (send_reply(sock, -EINVAL) < 0) _exit(0);
      continue;
    }
    const int32_t *targets = (const int32_t *)(asynctools_request + sizeof(*request));
    char *environment = asynctools_request + sizeof(*request) + (size_t)count * sizeof(int32_t);

    struct clone_args args;
    memset(&args, 0, sizeof(args));
    args.flags = CLONE_PARENT | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
    args.child_tid = (uint64_t)(uintptr_t)tid_address;
    // No exit signal of its own: with CLONE_PARENT the child inherits the server's (SIGCHLD), and clone3
    // rejects one.
    args.exit_signal = 0;
    long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) {
      become_child(request, targets, fds, count, environment, robust_head, robust_length);
      return;
    }
    int error = errno;
    if (pid > 0 && (request->flags & ASYNCTOOLS_FORK_EXIT_WITHOUT_REPLY)) _exit(0);
    for (int i = 0; i < count; i++) close(fds[i]);
    if (send_reply(sock, pid > 0 ? (int32_t)pid : -error) < 0) _exit(0);
  }
}

/// The pre-init hook: in a normal run it only records that it exists (a program linking this
/// library dynamically has no pre-init hook, and then no fork server); in a copy started as a fork
/// server (`ASYNCTOOLS_FORK_SERVER=<socket>:<parent pid>`) it serves until the parent goes away.
static void asynctools_fork_server_preinit(int argc, char **argv, char **envp) {
  (void)argc;
  (void)argv;
  asynctools_fork_server_hook_ran = 1;
  if (envp == NULL) return;
  const char *prefix = ASYNCTOOLS_ENV_FORK_SERVER "=";
  size_t prefix_length = strlen(prefix);
  const char *value = NULL;
  for (char **entry = envp; *entry != NULL; entry++) {
    if (strncmp(*entry, prefix, prefix_length) == 0) value = *entry + prefix_length;
  }
  if (value == NULL) return;
  char *end = NULL;
  long sock = strtol(value, &end, 10);
  const char *parent_text = end + 1;
  long parent = (end != value && *end == ':') ? strtol(parent_text, &end, 10) : 0;
  if (end == parent_text || *end != 0 || sock < 0 || parent <= 0) {
    static const char message[] = "ASYNCTOOLS_FORK_SERVER is set but malformed (expected <fd>:<parent pid>)\n";
    ssize_t ignored = write(2, message, sizeof(message) - 1);
    (void)ignored;
    _exit(126);
  }
  // The server never outlives its parent; if the parent is already gone, neither does it start.
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (getppid() != (pid_t)parent) {
    // The parent died meanwhile, or the variable was inherited by accident: say so rather than vanish.
    static const char message[] = "ASYNCTOOLS_FORK_SERVER is set but names another parent process: not serving\n";
    ssize_t ignored = write(2, message, sizeof(message) - 1);
    (void)ignored;
    _exit(125);
  }
  serve((int)sock);
}

__attribute__((section(".preinit_array"), used)) static void (*asynctools_fork_server_preinit_entry)(
    int, char **, char **) = asynctools_fork_server_preinit;
#else
int asynctools_open_working_directory(void) { errno = ENOSYS; return -1; }
int asynctools_socketpair_seqpacket(int *fds) { (void)fds; errno = ENOSYS; return -1; }
ssize_t asynctools_send_with_descriptors(int sock, const void *bytes, size_t length, const int *fds, int count) {
  (void)sock; (void)bytes; (void)length; (void)fds; (void)count; errno = ENOSYS; return -1;
}
int asynctools_receive_int32(int sock, int timeout_ms, int32_t *value) {
  (void)sock; (void)timeout_ms; (void)value; errno = ENOSYS; return -1;
}
int asynctools_fork_server_available(void) { return 0; }
void asynctools_fork_server_install_environment(void) {}
#endif
