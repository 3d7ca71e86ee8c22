#!/usr/bin/env python3
"""Writes the kernel's embedded symbol table (.ksymtab) as assembly.

Usage: gensyms.py NM KERNEL_ELF OUT.S
Reads function symbols with `NM -n -C -S --defined-only` and emits a sorted table the kernel
uses to print function names in backtraces (see kernel/debug/symbols.h for the layout).
"""
import subprocess
import sys

MAGIC = 0x314D59534B484F43  # "COHKSYM1" little-endian


def main():
    nm, elf, out = sys.argv[1:4]
    text = subprocess.run([nm, "-n", "-C", "-S", "--defined-only", elf], check=True,
                          capture_output=True, text=True).stdout
    syms = {}
    for line in text.splitlines():
        parts = line.split(None, 3)
        # With -S: address size type name; symbols without a size have only 3 fields + name.
        if len(parts) == 4 and len(parts[1]) == 16 and parts[2] in "tTwW":
            addr, size, kind, name = int(parts[0], 16), int(parts[1], 16), parts[2], parts[3]
        elif len(parts) >= 3 and parts[1] in "tTwW":
            addr, size, kind, name = int(parts[0], 16), 0, parts[1], " ".join(parts[2:])
        else:
            continue
        if addr < 0xffffffff80000000:
            continue  # 32-bit boot code: not worth symbolising in 64-bit backtraces
        # Prefer a sized symbol at an address over an unsized alias (e.g. a local label).
        if addr not in syms or (syms[addr][1] == 0 and size != 0):
            syms[addr] = (name, size)
    entries = sorted(syms.items())
    lines = ['    .section .ksymtab, "a"', "    .balign 8",
             f"    .quad {MAGIC:#x}, {len(entries)}"]
    strtab = bytearray()
    for addr, (name, size) in entries:
        lines.append(f"    .quad {addr:#x}")
        lines.append(f"    .long {len(strtab)}, {min(size, 0xffffffff)}")
        strtab += name.encode("utf-8", "replace") + b"\0"
    for i in range(0, len(strtab), 32):
        lines.append("    .byte " + ",".join(str(b) for b in strtab[i:i + 32]))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
