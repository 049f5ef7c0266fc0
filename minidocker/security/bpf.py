"""Chapter 06: classic BPF, the tiny machine seccomp runs on every system call: assembler and interpreter.

A seccomp filter is a program for the "classic" Berkeley Packet Filter machine, the one tcpdump
uses: a 32-bit accumulator ``A``, an index register ``X`` and a scratch memory ``M[0..15]`` (of
which our filters need only ``A``), instructions of 8 bytes (``code``, ``jt``, ``jf``, ``k``), jumps
that only go *forward* (so every program ends), and a ``ret`` that gives the verdict. For
seccomp the "packet" is a ``struct seccomp_data``: the syscall number at offset 0, the
architecture at 4, the six arguments as 64-bit words from offset 16.

We need only a handful of instructions, so this module is small: build instructions with
:func:`ld`, :func:`jeq`, :func:`ret` ..., name jump targets with :class:`Label`, :func:`assemble`
the list into the bytes the kernel loads, :func:`disassemble` them to read them back, and
:func:`run` them here in Python on a made-up ``seccomp_data``, to test a filter without a kernel.

Example::

    >>> program = assemble([ld(0), jeq(39, 0, "deny"), ret(0x7FFF0000), Label("deny"), ret(0x50001)])
    >>> run(program, struct.pack("<i", 39) + bytes(60)) == 0x7FFF0000     # getpid: allowed
    True
"""

from __future__ import annotations

import struct
from collections import namedtuple
from collections.abc import Sequence

__all__ = ["Insn", "Label", "and_", "assemble", "disassemble", "ja", "jeq", "jge", "jgt", "jset", "ld",
           "ret", "run"]

# <linux/filter.h>: class | size | mode (or operation | source). Only what seccomp filters need.
LD_W_ABS = 0x20  # A = 32-bit word at offset k of the data
ALU_AND_K = 0x54  # A &= k
JMP_JA = 0x05  # jump k instructions forward
JMP_JEQ_K, JMP_JGT_K, JMP_JGE_K, JMP_JSET_K = 0x15, 0x25, 0x35, 0x45  # A == k, A > k, A >= k, A & k
RET_K = 0x06  # return k: the verdict
_JUMPS = {JMP_JEQ_K: "jeq", JMP_JGT_K: "jgt", JMP_JGE_K: "jge", JMP_JSET_K: "jset"}
MAX_INSNS = 4096  # the kernel's BPF_MAXINSNS


class Insn(namedtuple("Insn", "code k jt jf", defaults=(0, 0, 0))):
    """One instruction; ``jt``/``jf`` (and ``k`` of ``ja``) may name a :class:`Label` until assembled."""

    __slots__ = ()
    code: int
    k: int | str
    jt: int | str
    jf: int | str


class Label(namedtuple("Label", "name")):
    """A place in the program that jumps can name; it takes no room."""

    __slots__ = ()
    name: str


def ld(offset: int) -> Insn:
    """``A = data[offset:offset+4]`` (a 32-bit word, host byte order)."""
    return Insn(LD_W_ABS, offset)


def and_(k: int) -> Insn:
    """``A &= k``."""
    return Insn(ALU_AND_K, k)


def jeq(k: int, jt: int | str = 0, jf: int | str = 0) -> Insn:
    """If ``A == k`` go to ``jt``, else to ``jf`` (0 = the next instruction)."""
    return Insn(JMP_JEQ_K, k, jt, jf)


def jgt(k: int, jt: int | str = 0, jf: int | str = 0) -> Insn:
    """If ``A > k`` (unsigned) go to ``jt``, else to ``jf``."""
    return Insn(JMP_JGT_K, k, jt, jf)


def jge(k: int, jt: int | str = 0, jf: int | str = 0) -> Insn:
    """If ``A >= k`` (unsigned) go to ``jt``, else to ``jf``."""
    return Insn(JMP_JGE_K, k, jt, jf)


def jset(k: int, jt: int | str = 0, jf: int | str = 0) -> Insn:
    """If ``A & k`` is not zero go to ``jt``, else to ``jf``."""
    return Insn(JMP_JSET_K, k, jt, jf)


def ja(target: int | str) -> Insn:
    """Jump forward unconditionally (32-bit offset: the only way to jump further than 255)."""
    return Insn(JMP_JA, target)


def ret(k: int) -> Insn:
    """Stop and return ``k``: for seccomp, the action (``SECCOMP_RET_*``) and its data."""
    return Insn(RET_K, k)


# exercise 06.3: Assemble: resolve the labels, pack 8 bytes an instruction
# hint: first pass: the index of each Label (labels take no room); second pass: a label target
#   becomes target - (index + 1); refuse backward jumps, conditional offsets over 255 and programs
#   over MAX_INSNS; struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF) each instruction.
# --8<-- [start:assemble]
def assemble(program: Sequence[Insn | Label]) -> bytes:
    """Resolve labels into forward offsets and pack each instruction as ``struct sock_filter``.

    A conditional jump holds its offsets in one byte each: more than 255 instructions away is an
    error here (use :func:`ja`, which has 32 bits). Backward jumps do not exist in classic BPF.
    """
    where: dict[str, int] = {}
    insns: list[Insn] = []
    for item in program:
        if isinstance(item, Label):
            if item.name in where:
                raise ValueError(f"label {item.name!r} defined twice")
            where[item.name] = len(insns)
        else:
            insns.append(item)
    if not 0 < len(insns) <= MAX_INSNS:
        raise ValueError(f"a BPF program has 1 to {MAX_INSNS} instructions, not {len(insns)}")

    def offset(target: int | str, index: int, limit: int) -> int:
        if isinstance(target, str):
            if target not in where:
                raise ValueError(f"jump to undefined label {target!r}")
            target = where[target] - index - 1
        if not 0 <= target <= limit or index + 1 + target > len(insns):
            raise ValueError(f"instruction {index}: jump of {target} is out of range (0..{limit})")
        return target

    out = bytearray()
    for i, insn in enumerate(insns):
        k, jt, jf = insn.k, insn.jt, insn.jf
        if insn.code == JMP_JA:
            k = offset(k, i, 0xFFFFFFFF)
        elif insn.code in _JUMPS:
            jt, jf = offset(jt, i, 255), offset(jf, i, 255)
        out += struct.pack("<HBBI", insn.code, jt, jf, int(k) & 0xFFFFFFFF)
    return bytes(out)
# --8<-- [end:assemble]


def _unpack(code: bytes) -> list[tuple[int, int, int, int]]:
    if len(code) % 8:
        raise ValueError("a BPF program is a whole number of 8-byte instructions")
    return [struct.unpack_from("<HBBI", code, i) for i in range(0, len(code), 8)]


def disassemble(code: bytes) -> list[str]:
    """One readable line per instruction, with absolute jump targets: ``"  3: jeq #39 jt 4 jf 5"``."""
    lines = []
    for i, (op, jt, jf, k) in enumerate(_unpack(code)):
        if op == LD_W_ABS:
            text = f"ld [{k}]"
        elif op == ALU_AND_K:
            text = f"and #{k:#x}"
        elif op == JMP_JA:
            text = f"ja {i + 1 + k}"
        elif op in _JUMPS:
            text = f"{_JUMPS[op]} #{k:#x} jt {i + 1 + jt} jf {i + 1 + jf}"
        elif op == RET_K:
            text = f"ret #{k:#010x}"
        else:
            text = f"op {op:#06x} k {k:#x}"
        lines.append(f"{i:4}: {text}")
    return lines


# --8<-- [start:run]
def run(code: bytes, data: bytes) -> int:
    """Interpret ``code`` on ``data`` as the kernel would, and return what its ``ret`` returns."""
    insns, a, pc = _unpack(code), 0, 0
    while pc < len(insns):
        op, jt, jf, k = insns[pc]
        pc += 1
        if op == LD_W_ABS:
            if k % 4 or k + 4 > len(data):
                raise ValueError(f"load of offset {k} outside the data")
            a = struct.unpack_from("<I", data, k)[0]
        elif op == ALU_AND_K:
            a &= k
        elif op == JMP_JA:
            pc += k
        elif op in _JUMPS:
            taken = {JMP_JEQ_K: a == k, JMP_JGT_K: a > k, JMP_JGE_K: a >= k, JMP_JSET_K: a & k != 0}[op]
            pc += jt if taken else jf
        elif op == RET_K:
            return k
        else:
            raise ValueError(f"instruction {pc - 1}: opcode {op:#x} is not supported here")
    raise ValueError("the program ran off its end without a ret")
# --8<-- [end:run]
