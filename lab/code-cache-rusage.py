# For lab/code-cache-single.ts: runs argv[2:] and writes its CPU (user + system, ms, from wait4's
# rusage, microsecond resolution where /usr/bin/time prints hundredths) to the file argv[1].
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], 'w') as f:
    f.write('%.1f %d\n' % ((ru.ru_utime + ru.ru_stime) * 1000, ru.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) if os.waitstatus_to_exitcode(status) >= 0 else 1)
