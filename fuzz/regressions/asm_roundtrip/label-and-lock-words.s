label: exit
# comment only
lock fetch xchg [%r10-8], %r1
