// SPDX-License-Identifier: MIT
// AdaptiveMutex: a mutex that spins a little before it sleeps, for short critical sections many threads share.
#pragma once

#include <pthread.h>

namespace cenalloc {

/// A Lockable (std::lock_guard, std::unique_lock) over glibc's adaptive
/// pthread mutex: a thread that finds it held spins for a bounded number of
/// tries before it sleeps in the kernel. Where critical sections are a
/// microsecond or two and several threads take the lock for every request,
/// sleeping and being woken (two context switches) costs more than the
/// wait; the spin is bounded, so a holder that was preempted costs no more
/// than with std::mutex.
class AdaptiveMutex {
public:
    AdaptiveMutex() {
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
        pthread_mutex_init(&mutex_, &attr);
        pthread_mutexattr_destroy(&attr);
    }
    ~AdaptiveMutex() { pthread_mutex_destroy(&mutex_); }
    AdaptiveMutex(const AdaptiveMutex&) = delete;
    AdaptiveMutex& operator=(const AdaptiveMutex&) = delete;

    void lock() { pthread_mutex_lock(&mutex_); }
    bool try_lock() { return pthread_mutex_trylock(&mutex_) == 0; }
    void unlock() { pthread_mutex_unlock(&mutex_); }

private:
    pthread_mutex_t mutex_;
};

} // namespace cenalloc
