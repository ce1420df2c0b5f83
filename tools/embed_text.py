#!/usr/bin/env python3
"""Embeds a text file (the routes.json schema, the table SQL) into the binary as a C++ string constant,
so the gateway validates against exactly the schema it was built with."""
import sys

src, dst, name = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(src, 'rb').read()
body = ''.join(str(b if b < 128 else b - 256) + ',' for b in data)  # as char, which is signed here
with open(dst, 'w') as out:
    out.write('#include <cstddef>\nnamespace wsgw {\n')
    out.write(f'extern const char {name}[] = {{{body}0}};\n')
    out.write(f'extern const std::size_t {name}Size = {len(data)};\n')
    out.write('}\n')
