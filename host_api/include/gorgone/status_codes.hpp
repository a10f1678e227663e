// Gorgone's status codes, as stored in gorgone_history.code and sent in replies.
#pragma once

namespace gorgone::code {
inline constexpr int kActionBegin = 0;        // started / progress; code of GETLOG, PONG, routed ACKs
inline constexpr int kActionFinishKo = 1;     // failed (terminal)
inline constexpr int kActionFinishOk = 2;     // succeeded (terminal)
inline constexpr int kStarted = 3;            // "gorgoned is starting..."
inline constexpr int kActionContinue = 4;
inline constexpr int kCommandResult = 100;    // one command's result
inline constexpr int kProcessCopyInProgress = 101;
}  // namespace gorgone::code
