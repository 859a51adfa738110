#!/usr/bin/env python3
"""tests/fuzz/seeds.py: writes the hand-made seed inputs of tests/fuzz/corpus/.

    python3 tests/fuzz/seeds.py            # (re)writes corpus/<target>/seed-*

Each seed is a small program in the byte encoding that fuzz_c_api.cpp and
fuzz_cpp_api.cpp decode (one byte per choice, read in the order the targets
read them; past the end of the input every read is 0). The functions below
mirror the decoders; keep them in step when a decoder changes.

The other files of corpus/<target>/: "cov-*" are inputs that longer fuzzing
runs found, minimised to the ones that add edge coverage
(fuzz_<target> -merge=1 -use_counters=0 -use_cmp=0 OUT IN...); the rest,
named after what they found, are inputs that found a defect (written here
too with --defects, as readable programs).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def u16(v):
    return [v & 0xFF, (v >> 8) & 0xFF]


# ---- fuzz_c_api.cpp -------------------------------------------------------------------

class C:
    """Builds an input of fuzz_c_api.cpp."""

    def __init__(self, threads, probes=0):
        # threads 0: the default engine (NULL, platform_init); 1..4: an engine with that many threads
        self.b = [threads, probes]

    ARG_BYTES = 8  # every action: code, slot, then a block of 8 argument bytes (zeros past what it uses)

    def act(self, code, slot, *args):
        args = list(args)
        assert len(args) <= self.ARG_BYTES, args
        self.b += [code, slot] + args + [0] * (self.ARG_BYTES - len(args))
        return self

    @staticmethod
    def size(kind, v=0):
        # size_class(): 'one' 1 byte; 'tiny' 1..16; 'small' 17..4096; 'medium' 4097..65536; 'large' 64 KiB..850 KiB
        return {'one': [0], 'tiny': [1, v], 'small': [2] + u16(v), 'medium': [3] + u16(v), 'large': [4] + u16(v)}[kind]

    # slot 0: plain over AF_UNIX, slot 1: plain over TCP, slot 2: custom transport (when made implicitly)
    def create(self, slot, kind='plain', tcp=False):
        variant = {'plain': [0], 'custom': [4], 'null_send': [7, 0], 'null_recv': [7, 1]}[kind]
        return self.act(0, slot, *(variant + [0 if tcp else 1]))

    def open(self, slot, how='real'):
        v = {'real': 0, 'null_transport': 3, 'null_callback': 4, 'unconnected': 5, 'disconnected': 6,
             'null_socket': 7, 'not_a_socket': 8}[how]
        return self.act(3, slot, v)

    ACTION = {'none': 2, 'close': 0, 'destroy': 1}

    def send(self, slot, size=('small', 100), then='none'):
        return self.act(5, slot, 0, *self.size(*size), self.ACTION[then])

    def send_gather(self, slot, count, size=('small', 300), then='none'):
        return self.act(5, slot, 1, count - 2, *self.size(*size), self.ACTION[then])

    def send_many(self, slot, count, each=1, then='none'):  # 65..264 buffers: more than one sendmsg takes
        return self.act(5, slot, 2, count - 65, each - 1, self.ACTION[then])

    def send_large(self, slot, v=20000, then='none'):  # 64 KiB + v * 15 bytes
        return self.act(5, slot, 3, *u16(v), self.ACTION[then])

    def send_bad(self, slot, what):
        form = {'count0': 4, 'null_payload': 5, 'null_buffer': 6, 'zero_length': 7, 'overflow': 8,
                'null_callback': 9, 'null_socket': 10}[what]
        return self.act(5, slot, form, *([3] if what == 'overflow' else []))

    def send_chain(self, slot, length, total=50, then='none'):
        return self.act(5, slot, 11, total - 1, length - 1, self.ACTION[then])

    def receive(self, slot, room=100, then='none'):
        return self.act(11, slot, 1, *u16(room - 1), self.ACTION[then])

    def receive_scatter(self, slot, count, room=600, then='none'):
        return self.act(11, slot, 2, count - 2, *u16(room - count), self.ACTION[then])

    def receive_many(self, slot, count, each=1, then='none'):
        return self.act(11, slot, 3, count - 65, each - 1, self.ACTION[then])

    def receive_bad(self, slot, what):
        form = {'count0': 5, 'null_payload': 6, 'null_buffer': 7, 'zero_length': 8, 'overflow': 9,
                'null_callback': 10, 'null_socket': 11}[what]
        return self.act(11, slot, form, *([3] if what == 'overflow' else []))

    def receive_rearm(self, slot, times, room=200, then='none'):
        return self.act(11, slot, 12, *u16(room - 1), times - 1, self.ACTION[then])

    def notify(self, slot, kind='in', then='none'):
        if kind == 'in':
            return self.act(15, slot, 0, self.ACTION[then])
        if kind == 'out':
            return self.act(15, slot, 3, self.ACTION[then])
        if kind == 'type0':
            return self.act(15, slot, 5, 0)
        if kind == 'type_big':
            return self.act(15, slot, 5, 1, 200)
        if kind == 'null_callback':
            return self.act(15, slot, 6)
        return self.act(15, slot, 7)  # NULL socket

    def close(self, slot):
        return self.act(17, slot, 1)

    def close_null(self):
        return self.act(17, 0, 0)

    def destroy(self, slot):
        return self.act(18, slot, 1)

    def destroy_null(self):
        return self.act(18, 0, 0)

    def peer_write(self, slot, size=('small', 100)):
        return self.act(19, slot, *self.size(*size))

    def peer_read(self, slot, size=('medium', 60000)):
        return self.act(22, slot, *self.size(*size))

    def peer_shutdown(self, slot, how='wr'):
        return self.act(24, slot, {'rd': 0, 'wr': 1, 'rdwr': 2}[how])

    def peer_close(self, slot, reset=False):
        return self.act(25, slot, 0 if reset else 1)

    FAULT = {'eagain': 0, 'eintr': 1, 'reset': 2, 'error': 3, 'short': 4, 'zero': 5, 'over': 6}

    def fault(self, slot, direction, kind, count=1, arg=0):
        return self.act(26, slot, 0 if direction == 'send' else 1, self.FAULT[kind], count - 1, arg)

    def wait(self, ms):
        return self.act(28, 0, {0: 0, 1: 1, 5: 2, 20: 3, 60: 4}[ms])

    def burst(self, slot, senders=3, per=4, receiver=False, close=False, big=False, seed=1, size=8):
        # sizes: per-op lengths come from a generator seeded by `seed`; with
        # big some are 4 KiB..68 KiB, the others 1..(size // 4 * 8 + 1) bytes
        sizes = (0 if big else 1) | (size << 2 & 0xFC)
        return self.act(30, slot, senders - 2, per - 1, 0 if receiver else 1, 0 if close else 5, sizes, *u16(seed))

    def drop_engine(self):
        return self.act(31, 0)

    def bytes(self):
        return bytes(self.b)


def c_seeds():
    s = {}
    s['echo-plain'] = (C(1).create(0).open(0).receive(0, 500).send(0, ('small', 300))
                       .peer_read(0).peer_write(0, ('small', 200)).wait(20).close(0).destroy(0))
    s['tcp-many-buffers'] = (C(2).create(1, tcp=True).open(1).send_many(1, 200, 2).send_gather(1, 8)
                             .receive_many(1, 100).peer_write(1, ('small', 150)).peer_read(1).wait(20))
    s['large-send-pending-then-destroy'] = (C(1).create(0).open(0).send_large(0, 50000).send(0).receive(0)
                                            .peer_read(0, ('small', 1000)).destroy(0))
    s['bad-arguments'] = (C(3, probes=1).create(0).open(0).send_bad(0, 'count0').send_bad(0, 'null_payload')
                          .send_bad(0, 'null_buffer').send_bad(0, 'zero_length').send_bad(0, 'overflow')
                          .send_bad(0, 'null_callback').send_bad(0, 'null_socket')
                          .receive_bad(0, 'count0').receive_bad(0, 'null_payload').receive_bad(0, 'null_buffer')
                          .receive_bad(0, 'zero_length').receive_bad(0, 'overflow')
                          .receive_bad(0, 'null_callback').receive_bad(0, 'null_socket')
                          .notify(0, 'type0').notify(0, 'type_big').notify(0, 'null_callback')
                          .notify(0, 'null_socket').close_null().destroy_null())
    s['open-variants'] = (C(1).create(0).open(0, 'null_transport').open(0, 'null_callback')
                          .open(0, 'unconnected').open(0, 'disconnected').open(0, 'null_socket')
                          .open(0, 'not_a_socket').open(0).open(0).close(0).open(0).send(0).receive(0)
                          .create(1, 'null_send').create(1, 'null_recv').create(1).close(1).open(1).send(1))
    s['custom-faults'] = (C(2).create(2, 'custom').open(2).fault(2, 'send', 'short', 3, 5)
                          .fault(2, 'send', 'eintr', 2).send(2, ('small', 500)).fault(2, 'recv', 'short', 2, 3)
                          .fault(2, 'recv', 'eintr').receive(2, 300).peer_write(2, ('small', 200))
                          .peer_read(2).wait(20).fault(2, 'send', 'over', 1, 1).send(2).send(2).wait(5))
    s['custom-reset-and-zero'] = (C(1).create(2, 'custom').open(2).fault(2, 'recv', 'zero')
                                  .receive(2).receive(2).peer_write(2).wait(20).fault(2, 'send', 'reset')
                                  .send(2).fault(2, 'recv', 'reset').receive(2).peer_write(2).wait(20))
    s['custom-eagain'] = (C(1).create(2, 'custom').open(2).fault(2, 'send', 'eagain').send(2)
                          .fault(2, 'recv', 'eagain').receive(2).peer_write(2).peer_read(2).wait(20)
                          .peer_write(2).wait(5))
    s['peer-shutdown-eof'] = (C(2).create(0).open(0).peer_write(0, ('small', 3000)).peer_shutdown(0, 'wr')
                              .receive(0, 1000).receive(0, 1000).receive(0, 2000).receive(0).wait(20))
    s['peer-reset-tcp'] = (C(1).create(1, tcp=True).open(1).receive(1).send(1).peer_write(1)
                           .peer_close(1, reset=True).wait(20).send(1).receive(1).notify(1, 'in').wait(20))
    s['peer-close-unix'] = (C(1).create(0).open(0).send_large(0, 30000).peer_write(0).peer_close(0)
                            .receive(0).receive(0).wait(20).send(0).notify(0, 'out').wait(5))
    s['notify'] = (C(2).create(0).open(0).notify(0, 'out').notify(0, 'in').peer_write(0).wait(5)
                   .notify(0, 'in').notify(0, 'in').close(0))
    s['chains'] = (C(2).create(0).open(0).send_chain(0, 20).receive_rearm(0, 5).peer_write(0, ('small', 900))
                   .peer_read(0).wait(20).peer_read(0).wait(5))
    s['close-and-destroy-in-callbacks'] = (C(3).create(0).open(0).receive(0, 10, then='close').peer_write(0)
                                           .wait(20).create(1).open(1).receive(1, 10, then='destroy')
                                           .send(1).peer_write(1).wait(20).create(2, 'custom').open(2)
                                           .send(2, then='destroy').wait(5))
    s['burst-concurrent-senders'] = (C(4).create(0).open(0).burst(0, 3, 4, receiver=True).peer_write(0)
                                     .peer_read(0).wait(20).burst(0, 2, 3, big=True).peer_read(0).wait(20))
    s['default-engine-drop'] = (C(0).create(0).open(0).send(0).receive(0).drop_engine().create(1).open(1)
                                .send(1).peer_write(0).wait(20))
    s['engine-drop-destroy-in-callback'] = (C(2).create(0).open(0).receive(0, 10, then='destroy')
                                            .drop_engine().peer_write(0).wait(60))
    return s


def c_close_defect():
    """A close while other threads start sends, many times over (the defect
    found first: a send that completed at once on another thread has its
    callback run after async_socket_close returned)."""
    p = C(2)
    for i in range(32):
        p.burst(0, 3, 4, close=True, seed=i, size=4).destroy(0)
    return p


# ---- fuzz_cpp_api.cpp -------------------------------------------------------------------

class Cpp:
    """Builds an input of fuzz_cpp_api.cpp (the same layout: code, slot, 8 argument bytes)."""

    ARG_BYTES = 8
    STYLE = {'callback': 0, 'await': 3, 'token': 5, 'prestopped': 7}
    ACTION = {'none': 2, 'close': 0, 'destroy': 1}

    def __init__(self, threads):
        self.b = [{0: 0, 1: 1, 2: 2, 4: 3}[threads]]

    def act(self, code, slot, *args):
        args = list(args)
        assert len(args) <= self.ARG_BYTES, args
        self.b += [code, slot] + args + [0] * (self.ARG_BYTES - len(args))
        return self

    def create(self, slot, kind='plain', tcp=False, owner=False):
        v = {'plain': 0, 'custom': 4, 'empty': 6, 'default_engine': 7}[kind]
        return self.act(0, slot, v, 0 if tcp else 1, 0 if owner else 1)

    def open(self, slot, how='open'):
        return self.act(3, slot, {'open': 0, 'open_async': 3, 'no_callback': 4, 'not_a_socket': 5}[how])

    def op(self, kind, slot, style='callback', form=0, size=None, then='none', extra=()):
        # kind: send / receive / notify; form: as op_action reads it (0 one or a few buffers, 1 gather,
        # 2 many, 3 large, 4/5 chain, 6.. bad arguments); size: the bytes of the size arguments
        code = {'send': 5, 'receive': 11, 'notify': 15}[kind]
        args = [self.STYLE[style], form] + list(extra) + list(size or [])
        bad = form in (6, 7, 8, 9) or (form == 10 and style == 'callback') or (kind == 'notify' and form % 6 == 5)
        if not bad:
            args.append(self.ACTION[then])
        return self.act(code, slot, *args)

    def send(self, slot, style='callback', nbytes=1000, then='none'):
        return self.op('send', slot, style, 0, [2] + u16(nbytes - 17), then)

    def receive(self, slot, style='callback', room=1000, then='none'):
        return self.op('receive', slot, style, 0, u16(room - 1), then)

    def notify(self, slot, style='callback', out=False, then='none'):
        return self.op('notify', slot, style, 3 if out else 0, None, then)

    def close(self, slot):
        return self.act(17, slot)

    def destroy(self, slot):
        return self.act(18, slot)

    def peer_write(self, slot, nbytes=100):
        return self.act(19, slot, 2, *u16(nbytes - 17))

    def peer_read(self, slot):
        return self.act(22, slot, 3, *u16(60000))

    def peer_shutdown(self, slot, how='wr'):
        return self.act(24, slot, {'rd': 0, 'wr': 1, 'rdwr': 2}[how])

    def peer_close(self, slot, reset=False):
        return self.act(25, slot, 0 if reset else 1)

    def fault(self, slot, direction, kind, count=1, arg=0):
        return self.act(26, slot, 0 if direction == 'send' else 1, C.FAULT[kind], count - 1, arg)

    def cancel(self, slot, which=0):
        return self.act(27, slot, which)

    def wait(self, ms):
        return self.act(28, 0, {0: 0, 1: 1, 5: 2, 20: 3, 60: 4}[ms])

    def burst(self, slot, senders=3, per=4, receiver=False, close=False, canceller=False, seed=1, size=8, big=False,
              styles='mixed'):
        sizes = (0 if big else 1) | (size << 2 & 0xFC)
        c = (0 if canceller else 1) | ({'mixed': 0, 'callback': 1, 'await': 2, 'token': 3}[styles] << 1)
        return self.act(30, slot, senders - 2, per - 1, 0 if receiver else 1, 0 if close else 5, c, sizes, *u16(seed))

    def sync_wait(self, slot, what='send', stop_after_ms=10, nbytes=100, out=False):
        w = {'send': 0, 'receive': 1, 'notify': 2}[what]
        size = [2] + u16(nbytes - 17) if what == 'send' else u16(nbytes - 1)
        return self.act(31, slot, 0, w, stop_after_ms, 1 if out else 0, *([] if what == 'notify' else size))

    def move(self, slot, assign=False):
        return self.act(31, slot, 1, 0 if assign else 1)

    def bytes(self):
        return bytes(self.b)


def cpp_seeds():
    s = {}
    s['echo-both-forms'] = (Cpp(1).create(0).open(0).receive(0, 'await').send(0, 'callback', 300)
                            .send(0, 'await', 200).peer_read(0).peer_write(0, 500).receive(0, 'callback')
                            .wait(20).close(0).destroy(0))
    s['zero-threads'] = (Cpp(0).create(0).open(0).receive(0, 'await').receive(0, 'callback').send(0, 'await')
                         .peer_write(0, 300).wait(20).peer_read(0).notify(0, 'token').cancel(0).wait(5))
    s['stop-tokens'] = (Cpp(2).create(0).open(0).receive(0, 'token').receive(0, 'prestopped').send(0, 'prestopped')
                        .notify(0, 'prestopped').cancel(0).peer_write(0).wait(20).receive(0, 'token').peer_write(0)
                        .cancel(0).wait(20))
    s['bad-input'] = (Cpp(1).create(0).open(0).op('send', 0, 'callback', 6).op('send', 0, 'await', 7)
                      .op('send', 0, 'callback', 8).op('send', 0, 'token', 9).op('send', 0, 'callback', 10)
                      .op('receive', 0, 'await', 6).op('receive', 0, 'callback', 7).op('receive', 0, 'await', 8)
                      .op('receive', 0, 'callback', 9).op('receive', 0, 'callback', 10)
                      .op('notify', 0, 'callback', 5).op('notify', 0, 'await', 11, extra=[40])
                      .create(1, 'empty').open(0, 'not_a_socket').open(0, 'no_callback').open(0)
                      .close(0).send(0, 'callback').send(0, 'await').receive(0, 'callback').notify(0, 'await'))
    s['custom-transport-faults'] = (Cpp(2).create(2, 'custom', owner=True).open(2, 'open_async')
                                    .fault(2, 'send', 'short', 3, 5).send(2, 'await', 600)
                                    .fault(2, 'recv', 'zero').receive(2, 'callback').receive(2, 'await')
                                    .peer_write(2, 300).peer_read(2).wait(20).fault(2, 'send', 'over', 1, 1)
                                    .send(2, 'callback').send(2, 'await').wait(5))
    s['chains'] = (Cpp(2).create(0).open(0).op('send', 0, 'callback', 4, [30, 40]).op('send', 0, 'await', 5, [6, 20])
                   .op('receive', 0, 'await', 4, [5, 50]).peer_write(0, 2000).peer_read(0).wait(20))
    s['close-destroy-on-completion'] = (Cpp(4).create(0).open(0).receive(0, 'await', 10, then='close')
                                        .peer_write(0).wait(20).create(1).open(1).receive(1, 'callback', 10, then='destroy')
                                        .peer_write(1).wait(20).create(2, owner=True).open(2)
                                        .send(2, 'await', 50, then='destroy').wait(20))
    s['bursts'] = (Cpp(4).create(0).open(0).burst(0, 3, 4, receiver=True, canceller=True).peer_write(0, 600)
                   .peer_read(0).wait(20).burst(0, 2, 3, big=True, canceller=True).peer_read(0).wait(20))
    s['sync-wait'] = (Cpp(0).create(0).open(0).sync_wait(0, 'send').sync_wait(0, 'receive', 5)
                      .peer_write(0).sync_wait(0, 'receive', 20).sync_wait(0, 'notify', 3, out=True))
    s['move-and-default-engine'] = (Cpp(1).create(0).open(0).send(0, 'await').move(0).send(0, 'callback')
                                    .move(0, assign=True).receive(0, 'await').peer_write(0).wait(20)
                                    .create(1, 'default_engine').open(1).send(1, 'callback').receive(1, 'await')
                                    .peer_write(1).wait(20))
    s['peer-hangups'] = (Cpp(2).create(0).open(0).peer_write(0, 3000).peer_shutdown(0).receive(0, 'await')
                         .receive(0, 'callback').receive(0, 'await').create(1, tcp=True).open(1).receive(1, 'token')
                         .peer_close(1, reset=True).send(1, 'await').wait(20))
    return s


def cpp_cancel_defect():
    """A send co_awaited with a stop token is left pending with part of it sent
    (a short write, then EAGAIN, on a custom transport); a callback-form send
    queues behind it; the main thread stops the first one. The stop request
    fails the queued callback-form send and runs its callback on the stopping
    thread, inside request_stop()."""
    return (Cpp(1).create(2, 'custom').open(2).fault(2, 'send', 'short', 1, 10).fault(2, 'send', 'eagain')
            .send(2, 'token', 1000).send(2, 'callback', 100).cancel(2).wait(5))


def cpp_close_defect():
    p = Cpp(2)
    for i in range(32):
        p.burst(0, 3, 4, close=True, seed=i, size=4, styles='callback').destroy(0)
    return p


def c_destroy_race_defect():
    """Notifications armed to close their socket from the callback; the peer
    writes, so the first callback closes the socket on an engine thread and
    that close delivers the others, which call async_socket_close again; the
    main thread destroys the socket meanwhile (a destroy may run while a close
    is in progress on another thread). ~async_socket clears its core pointer
    before it waits for that close: ThreadSanitizer reports the race with the
    nested async_socket_close calls."""
    p = C(2)
    for _ in range(6):
        p.create(0).open(0).notify(0, 'in', then='close').notify(0, 'in', then='close').notify(0, 'in')
        p.peer_write(0, ('small', 1000))
        for _ in range(4):
            p.notify(0, 'in', then='close')
        p.close(0).destroy(0)
    return p


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def main():
    for name, prog in c_seeds().items():
        write('c_api', 'seed-' + name, prog.bytes())
    for name, prog in cpp_seeds().items():
        write('cpp_api', 'seed-' + name, prog.bytes())
    if len(sys.argv) > 1 and sys.argv[1] == '--defects':
        write('c_api', 'close-returns-before-inline-send-callback-on-another-thread', c_close_defect().bytes())
        write('c_api', 'destroy-while-callback-close-delivers-races-on-core', c_destroy_race_defect().bytes())
        write('cpp_api', 'close-returns-before-inline-send-callback-on-another-thread', cpp_close_defect().bytes())
        write('cpp_api', 'stop-request-runs-queued-send-callback-on-stopping-thread', cpp_cancel_defect().bytes())


if __name__ == '__main__':
    main()
