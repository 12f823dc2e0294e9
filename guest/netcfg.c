/* Network bring-up: lo always; the NIC (when the host gave one) with the static address jitvm.net names, or by DHCP
 * through busybox udhcpc. DNS servers go to /run/jitvm/resolv.conf, copied to /etc once the final root is in place. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "boot.h"

#define RESOLV_STAGED "/run/jitvm/resolv.conf"
#define UDHCPC_SCRIPT "/etc/jitvm/udhcpc.script"
#define NIC_WAIT_MS 3000

static int set_flags_up(int sock, const char *ifname)
{
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
        return -1;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(sock, SIOCSIFFLAGS, &ifr);
}

static void set_sockaddr(struct sockaddr *sa, struct in_addr addr)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_addr = addr;
}

static int set_address(int sock, const char *ifname, struct in_addr addr, unsigned prefix)
{
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    set_sockaddr(&ifr.ifr_addr, addr);
    if (ioctl(sock, SIOCSIFADDR, &ifr) < 0)
        return -1;
    struct in_addr mask = { htonl(prefix ? 0xffffffffu << (32 - prefix) : 0) };
    set_sockaddr(&ifr.ifr_netmask, mask);
    return ioctl(sock, SIOCSIFNETMASK, &ifr);
}

static int add_default_route(int sock, struct in_addr gateway)
{
    struct rtentry rt = { 0 };
    struct in_addr any = { 0 };
    set_sockaddr(&rt.rt_dst, any);
    set_sockaddr(&rt.rt_genmask, any);
    set_sockaddr(&rt.rt_gateway, gateway);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    return ioctl(sock, SIOCADDRT, &rt) < 0 && errno != EEXIST ? -1 : 0;
}

/* The first interface other than lo, waiting for virtio_net to register it. */
static int find_nic(char *name, size_t cap)
{
    const struct timespec step = { 0, 20 * 1000 * 1000 };
    for (int waited = 0; waited <= NIC_WAIT_MS; waited += 20) {
        DIR *d = opendir("/sys/class/net");
        struct dirent *e;
        int found = 0;
        while (d && !found && (e = readdir(d)) != NULL)
            if (e->d_name[0] != '.' && strcmp(e->d_name, "lo") != 0 && strlen(e->d_name) < cap) {
                memcpy(name, e->d_name, strlen(e->d_name) + 1);
                found = 1;
            }
        if (d)
            closedir(d);
        if (found)
            return 0;
        nanosleep(&step, NULL);
    }
    logmsg("error: %s given but the VM has no network interface", BOOT_ARG_NET);
    return -1;
}

static void stage_resolver(const char *dns)
{
    mkdir("/run/jitvm", 0755);
    FILE *f = fopen(RESOLV_STAGED, "we");
    if (!f)
        return;
    fprintf(f, "nameserver %s\n", dns);
    fclose(f);
}

/* `<ip>/<prefix>,<gateway>,<dns>` */
static int configure_static(int sock, const char *ifname, const char *spec)
{
    char ip[16], gateway[16], dns[16];
    unsigned prefix;
    struct in_addr addr, gw, ns;
    if (sscanf(spec, "%15[0-9.]/%u,%15[0-9.],%15[0-9.]", ip, &prefix, gateway, dns) != 4 || prefix > 32 ||
        inet_pton(AF_INET, ip, &addr) != 1 || inet_pton(AF_INET, gateway, &gw) != 1 ||
        inet_pton(AF_INET, dns, &ns) != 1) {
        logmsg("error: malformed %s=%s", BOOT_ARG_NET, spec);
        return -1;
    }
    if (set_address(sock, ifname, addr, prefix) < 0 || set_flags_up(sock, ifname) < 0 ||
        add_default_route(sock, gw) < 0) {
        logmsg("error: configuring %s as %s: %s", ifname, spec, strerror(errno));
        return -1;
    }
    stage_resolver(dns);
    return 0;
}

static int configure_dhcp(const char *ifname)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/udhcpc", "udhcpc", "-i", ifname, "-f", "-q", "-n", "-t", "10", "-T", "1", "-s", UDHCPC_SCRIPT,
              (char *)NULL);
        _exit(127);
    }
    int status = 0;
    while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        logmsg("error: no DHCP lease on %s", ifname);
        return -1;
    }
    return 0;
}

int boot_network(void)
{
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || set_flags_up(sock, "lo") < 0)
        logmsg("warning: bringing up lo: %s", strerror(errno));
    char spec[128], ifname[IFNAMSIZ];
    int result = 0;
    if (cmdline_last(BOOT_ARG_NET, spec, sizeof spec)) {
        if (find_nic(ifname, sizeof ifname) < 0)
            result = -1;
        else if (strcmp(spec, "dhcp") == 0)
            result = set_flags_up(sock, ifname) < 0 ? -1 : configure_dhcp(ifname);
        else
            result = configure_static(sock, ifname, spec);
    }
    if (sock >= 0)
        close(sock);
    return result;
}

void boot_resolver(void)
{
    FILE *in = fopen(RESOLV_STAGED, "re");
    if (!in)
        return;
    unlink("/etc/resolv.conf");  /* a rootfs may ship it as a symlink into a resolver daemon's runtime dir */
    mkdir("/etc", 0755);
    FILE *out = fopen("/etc/resolv.conf", "we");
    char line[256];
    while (out && fgets(line, sizeof line, in))
        fputs(line, out);
    if (out)
        fclose(out);
    fclose(in);
}
