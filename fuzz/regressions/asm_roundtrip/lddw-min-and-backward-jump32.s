lddw %r0, 0x8000000000000000
ja +0
jsle32 %r0, -1, -2
exit
