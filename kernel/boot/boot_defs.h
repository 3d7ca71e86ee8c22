/* Constants shared by boot.S and C++ (keep this file valid for both). */
#pragma once

#define BOOT_PROTO_PVH 1
#define BOOT_PROTO_MB2 2
#define BSP_BOOT_STACK_SIZE (32 * 1024)
