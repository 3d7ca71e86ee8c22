// Interrupt vector assignment. The local APIC prioritises by vector / 16 (the "priority
// class"), so the IPIs sit in the highest class (0xF0-0xFE): a CPU handling a device interrupt
// can still take a call or shootdown request. Device vectors are handed out by the allocator
// (smp/ipi.h: vector_alloc) from the range below, so nothing collides with these.
#pragma once

#include <cstdint>

namespace cohort::x86 {

constexpr uint8_t kVecDeviceFirst = 0x30;
constexpr uint8_t kVecDeviceLast = 0xdf;

constexpr uint8_t kVecTestTimer = 0xe0;   // the time tests' one-shot
constexpr uint8_t kVecLapicTimer = 0xef;  // the scheduler tick

constexpr uint8_t kVecIpiCall = 0xf0;       // remote function calls (smp/call.h)
constexpr uint8_t kVecIpiReschedule = 0xf1; // wake a halted CPU to look at its run queue
constexpr uint8_t kVecIpiKick = 0xf2;       // wake a CPU parked waiting for a lock (sync/park.h)
constexpr uint8_t kVecSpurious = 0xff;      // must end in 0xF on old CPUs; never acknowledged

} // namespace cohort::x86
