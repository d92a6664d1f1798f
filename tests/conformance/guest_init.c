// SPDX-License-Identifier: MIT
// /init of the conformance guests: mounts /dev, /proc, /sys, debugfs and /tmp, runs the listed programs, powers off.
//
// scripts/kernel-conformance boots a stock distribution kernel (x86) and
// scripts/board-conformance a kernel of its own (arm64) with an initramfs
// holding this program as /init, the test programs and /init.cmds (one
// command line per line, words separated by spaces). The output of every
// command goes to the device named by guest_output= on the kernel command
// line (the kernel hands parameters it does not know to init in its
// environment; default /dev/ttyS1, the x86 guest's second serial port, a
// file on the host, so kernel messages on the console never interleave with
// it; qemu's arm64 virt machine has one PL011, so the arm64 guest says
// guest_output=/dev/ttyAMA0 and boots quiet) between marker lines:
//
//     === begin <command line> ===
//     ...what the command printed...
//     === end <command line> status=<exit status> ===
//     === done ===
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void mountOrSay(const char* source, const char* target, const char* type) {
    mkdir(target, 0755);
    if (mount(source, target, type, 0, NULL) != 0 && errno != EBUSY)
        fprintf(stderr, "init: mount %s on %s: %s\n", type, target, strerror(errno));
}

static int runCommand(char* line, int out) {
    char* argv[32];
    int argc = 0;
    for (char* word = strtok(line, " \t"); word && argc < 31; word = strtok(NULL, " \t"))
        argv[argc++] = word;
    argv[argc] = NULL;
    if (argc == 0)
        return 0;
    pid_t child = fork();
    if (child == 0) {
        dup2(out, STDOUT_FILENO);
        dup2(out, STDERR_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "init: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int main(void) {
    mountOrSay("devtmpfs", "/dev", "devtmpfs");
    mountOrSay("proc", "/proc", "proc");
    mountOrSay("sysfs", "/sys", "sysfs");
    // A kernel without CONFIG_DEBUG_FS has no /sys/kernel/debug: nothing to mount there.
    if (access("/sys/kernel/debug", F_OK) == 0)
        mountOrSay("debugfs", "/sys/kernel/debug", "debugfs");
    mountOrSay("tmpfs", "/tmp", "tmpfs");

    const char* output = getenv("guest_output");
    if (!output || output[0] == '\0')
        output = "/dev/ttyS1";
    int out = open(output, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (out < 0) {
        fprintf(stderr, "init: %s: %s; writing to the console\n", output, strerror(errno));
        out = STDOUT_FILENO;
    }
    FILE* commands = fopen("/init.cmds", "re");
    char line[1024];
    while (commands && fgets(line, sizeof line, commands)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        char shown[1024];
        snprintf(shown, sizeof shown, "%s", line);
        dprintf(out, "=== begin %s ===\n", shown);
        int status = runCommand(line, out);
        dprintf(out, "=== end %s status=%d ===\n", shown, status);
    }
    dprintf(out, "=== done ===\n");
    if (commands)
        fclose(commands);
    fsync(out);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
