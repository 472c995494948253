# --- zygote.py: the process every run child is forked from ---------------------------
#
# The server forks the zygote once, when it starts serving, and never forks a run
# child itself. A fork marks every page of the forking process copy-on-write, and
# the server writes pages all the time (parsing a request, following records,
# replying, cleaning up): forking from it cost a page fault (~3 us in a VM) for each
# page it touched, ~250 per run. The zygote only waits on its socket between forks.
# It stays root like the server, so task code (another uid) cannot signal it.
#
# The server asks, one SOCK_SEQPACKET message per request, answered in order:
#   F<nonce> + 4 fds   fork a run child on these pipe ends; answer its pid (-errno)
#   C<nonce> + 4 fds   kill what runs left, fork as F, then reap the killed children;
#                      answer the pid once they are reaped
#   K                  kill what runs left and reap it; answer 0
#   W<pid>             wait for that child; answer its wait status (-1: not ours)
# Run children are the zygote's children, so their statuses come from it. Processes
# they leave behind are orphaned to the server (PID 1, or subreaper without
# namespaces), which reaps them as before.

# Ancillary buffer for the four pipe ends of a run child.
ZYGOTE_FDS = 4


class Zygote:
    """The server's handle: the zygote's pid and our end of its socket."""

    def __init__(self, server):
        ours, theirs = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        pid = raw_fork()
        if pid == 0:
            try:
                ours.close()
                zygote_main(theirs, server)
            finally:
                os._exit(0)
        if pid < 0:
            e = ctypes.get_errno()
            raise OSError(e, "fork of the zygote: " + os.strerror(e))
        theirs.close()
        self.pid, self.sock = pid, ours

    def ask(self, msg, fds=()):
        """Send a request and return the number it answers."""
        anc = [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, b"".join(fd.to_bytes(4, sys.byteorder) for fd in fds))]
        self.sock.sendmsg([msg], anc if fds else [])
        answer = self.sock.recv(64)
        if not answer:
            raise RuntimeError("the zygote is gone")
        return int(answer)

    def close(self):
        """Stop it; what it forked is killed by the caller."""
        self.sock.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass


def zygote_main(sock, server):
    """In the zygote: serve the server's requests until its socket closes."""
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)  # the pool's pipes are the server's alone
    os.dup2(null, 1)
    os.close(null)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if server.nice is not None:  # a spare inherits this until its run starts
        os.setpriority(os.PRIO_PROCESS, 0, server.nice[1])
    gc.disable()  # everything older is frozen; nothing here makes cycles
    children = []
    anc_size = _socket.CMSG_SPACE(4 * ZYGOTE_FDS)
    while True:
        msg, anc, _, _ = sock.recvmsg(64, anc_size)
        if not msg:
            return
        op = msg[:1]
        if op == b"W":
            pid = int(msg[1:])
            try:
                status = os.waitpid(pid, 0)[1]
                children.remove(pid)
            except (ChildProcessError, ValueError):
                status = -1
            sock.send(b"%d" % status)
            continue
        if op in (b"C", b"K"):
            kill_runs(server, children)
        answer = 0
        if op in (b"C", b"F"):
            fds = [int.from_bytes(data[i:i + 4], sys.byteorder)
                   for level, kind, data in anc if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS
                   for i in range(0, len(data) - 3, 4)]
            answer = fork_run_child(server, fds, msg[1:].decode(), children) if len(fds) == ZYGOTE_FDS else -22
            for fd in fds:
                os.close(fd)
        if op in (b"C", b"K"):
            for pid in children[:]:
                if pid != answer:
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
                    children.remove(pid)
        sock.send(b"%d" % answer)


def fork_run_child(server, fds, nonce, children):
    """Fork a run child on `fds` (request read end, records, end byte, output); its pid,
    or -errno."""
    pid = raw_fork()
    if pid == 0:
        try:
            child_main(server, fds, nonce)
        finally:
            os._exit(70)
    if pid < 0:
        return -ctypes.get_errno()
    children.append(pid)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child already did it, or is gone
    return pid


def kill_runs(server, children):
    """SIGKILL every process runs started (the spare child too); `children` are reaped
    by the caller, orphans by the server."""
    if server.ns:  # kill(-1) reaches everything in the namespace but us and its init, the server
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return
    if server.uid is not None:  # every run process carries the run uid, whatever its group
        helper = raw_fork()
        if helper == 0:
            try:
                os.setgid(server.uid)
                os.setuid(server.uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        if helper > 0:
            os.waitpid(helper, 0)
    for pid in children:
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except OSError:
                pass
