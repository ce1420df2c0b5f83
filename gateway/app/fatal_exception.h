// Owns: the last word of an exception nothing caught (std::terminate). A std::thread that cannot be made at
// start-up (RLIMIT_NPROC, a pids cgroup) throws std::system_error from wherever a part starts its thread;
// the parts that can go on without one catch it (worker threads, supervisors on a reload), and this handles
// the rest: one clear error line (what failed, and what to do) and exit status 1, instead of abort()'s
// "terminate called..." and a core dump. Unwinding is not attempted: a part's destructor could wait on a
// thread that never started or one that is stuck.
#pragma once

namespace wsgw {

void installFatalExceptionHandler();

}  // namespace wsgw
