"""The smallest attacker there is: a static x86-64 program that makes one system call, exits with its errno.

The attack battery of chapter 06 needs to make raw syscalls *inside* a container (``reboot`` with
bad magic numbers, ``init_module`` with a garbage image, ``ptrace``) where there is no Python and
no compiler, only busybox. So we write the program ourselves, as bytes: an ELF header, one program
header that maps the file at 0x400000, and a dozen machine instructions::

    mov rax, NR; mov rdi, ARG1; ... ; syscall      ; the attack
    test rax, rax; js failed; xor edi, edi; jmp out
    failed: mov rdi, rax; neg rdi                   ; -errno -> errno
    out: mov eax, 231; syscall                      ; exit_group(status)

Its exit status is 0 if the syscall succeeded, else the errno: ``$?`` in the container's shell
says what the kernel answered. An argument given as ``bytes`` is stored after the code and passed
as a pointer (a path, a buffer).

Example::

    >>> Path("getpid").write_bytes(syscall_program(39)); os.chmod("getpid", 0o755)
    >>> subprocess.run(["./getpid"]).returncode
    0
"""

from __future__ import annotations

import platform
import struct

__all__ = ["BASE", "PREVIOUS", "chain_program", "supported", "syscall_program"]

BASE = 0x400000  # where the program is mapped
_HEADERS = 64 + 56  # ELF header + one program header
# mov r64, imm64 for rdi, rsi, rdx, r10, r8, r9: the registers of syscall arguments 1 to 6
_MOV_ARG = (b"\x48\xbf", b"\x48\xbe", b"\x48\xba", b"\x49\xba", b"\x49\xb8", b"\x49\xb9")
_EXIT_WITH_ERRNO = bytes.fromhex(
    "4885c0"  # test rax, rax
    "7804"  # js +4 (to failed)
    "31ff"  # xor edi, edi
    "eb06"  # jmp +6 (to out)
    "4889c7"  # failed: mov rdi, rax
    "48f7df"  # neg rdi
    "b8e7000000"  # out: mov eax, 231 (exit_group)
    "0f05"  # syscall
)


def supported() -> bool:
    """Whether this machine runs the programs we write (x86-64 only)."""
    return platform.machine() == "x86_64"


# --8<-- [start:syscall_program]
def syscall_program(nr: int, *args: int | bytes) -> bytes:
    """A static x86-64 ELF executable that calls syscall ``nr`` with ``args`` and exits with its errno."""
    if len(args) > len(_MOV_ARG):
        raise ValueError("a syscall has at most 6 arguments")
    code_size = 10 + 10 * len(args) + 2 + len(_EXIT_WITH_ERRNO)
    code, data = b"\x48\xb8" + struct.pack("<q", nr), b""  # mov rax, nr
    for register, arg in zip(_MOV_ARG, args, strict=False):
        if isinstance(arg, bytes):  # data goes after the code; pass its address
            value, data = BASE + _HEADERS + code_size + len(data), data + arg
        else:
            value = arg & 0xFFFFFFFFFFFFFFFF
        code += register + struct.pack("<Q", value)
    code += b"\x0f\x05" + _EXIT_WITH_ERRNO  # syscall, then exit with its errno
    return _executable(code, data)
# --8<-- [end:syscall_program]


def _executable(code: bytes, data: bytes) -> bytes:
    """An ELF file that maps itself at :data:`BASE` (read, write, execute) and runs ``code``."""
    size = _HEADERS + len(code) + len(data)
    elf_header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, BASE + _HEADERS, 64, 0, 0, 64, 56, 1, 0, 0, 0)  # EXEC, x86-64
    program_header = struct.pack("<IIQQQQQQ", 1, 7, 0, BASE, BASE, size, size, 0x1000)  # LOAD, rwx
    return elf_header + program_header + code + data


class _Previous:
    def __repr__(self) -> str:
        return "PREVIOUS"


PREVIOUS = _Previous()  # an argument of chain_program: what the previous syscall returned (an fd)
# mov r64, rax for the argument registers (so a returned fd becomes the next call's argument)
_MOV_FROM_RAX = (b"\x48\x89\xc7", b"\x48\x89\xc6", b"\x48\x89\xc2", b"\x49\x89\xc2", b"\x49\x89\xc0",
                 b"\x49\x89\xc1")
_TAIL = bytes.fromhex("31ffeb06" "4889c7" "48f7df" "b8e7000000" "0f05")  # exit(0); failed: exit(errno)


def chain_program(*calls: tuple) -> bytes:
    """A static x86-64 program that makes several syscalls in a row; the first to fail exits with its errno.

    Each call is ``(nr, *args)``; an argument is an int, ``bytes`` (passed as a pointer), a list
    of ``bytes`` (a NULL-terminated array of pointers, an ``argv``), or :data:`PREVIOUS`, the
    value the call before returned. A last ``execve`` never returns: the program becomes another.
    Chapter 06's "shocker" lab chains ``open``, ``open_by_handle_at``, ``fchdir`` and ``execve``.
    """
    def arg_size(arg: object) -> int:
        return 3 if arg is PREVIOUS else 10

    sizes = [sum(arg_size(a) for a in args) + 10 + 2 + 3 + 6 for _nr, *args in calls]
    code_size, data = sum(sizes) + len(_TAIL), bytearray()

    def store(blob: bytes) -> int:
        data.extend(blob)
        return BASE + _HEADERS + code_size + len(data) - len(blob)

    code = b""
    for nr, *args in calls:
        if len(args) > len(_MOV_ARG):
            raise ValueError("a syscall has at most 6 arguments")
        for index, arg in enumerate(args):
            if arg is PREVIOUS:
                code += _MOV_FROM_RAX[index]
                continue
            if isinstance(arg, list):
                pointers = [store(item) for item in arg]
                value = store(struct.pack(f"<{len(pointers) + 1}Q", *pointers, 0))
            elif isinstance(arg, bytes):
                value = store(arg)
            else:
                value = arg & 0xFFFFFFFFFFFFFFFF
            code += _MOV_ARG[index] + struct.pack("<Q", value)
        code += b"\x48\xb8" + struct.pack("<q", nr) + b"\x0f\x05" + b"\x48\x85\xc0"  # syscall; test
        failed = sum(sizes) + 4  # the tail's "failed:" label
        code += b"\x0f\x88" + struct.pack("<i", failed - (len(code) + 6))  # js failed
    code += _TAIL
    assert len(code) == code_size
    return _executable(code, bytes(data))
