# --- boot.py: what `python -c` runs; compiles the worker out of process -------------
#
# The pool starts `python -S -B -c <this> <config json> <length>` and writes the
# worker's source (`length` bytes) to its stdin, where the requests follow. Compiling
# the ~1,300-line worker leaves ~3.5 MB of the compiler's memory resident in the
# process that compiled it; the server is the fork source of the zygote, and each
# fork copies (and each run child's exit tears down) the page tables of all that
# memory. So a throw-away child compiles it and hands back the marshalled code, which
# takes ~0.2 MB.
import marshal, os, sys

def _compiled(source):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            data = marshal.dumps(compile(source, "<coe-worker>", "exec"))
            while data:
                data = data[os.write(w, data):]
            os._exit(0)
        finally:
            os._exit(1)
    os.close(w)
    chunks = []
    while True:
        chunk = os.read(r, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if status != 0:  # compile it here then, whatever it costs (a syntax error shows)
        return compile(source, "<coe-worker>", "exec")
    return marshal.loads(b"".join(chunks))

def _source(length):
    """Exactly `length` bytes from stdin: what follows is the server's."""
    data = bytearray()
    while len(data) < length:
        chunk = os.read(0, length - len(data))
        if not chunk:
            raise SystemExit("the worker's source ended after %d of %d bytes" % (len(data), length))
        data += chunk
    return data.decode()


exec(_compiled(_source(int(sys.argv.pop()))))
