// Loads code, forks, opens a socket and starts a thread.
#include <dlfcn.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
int forward(int x) {
    void* h = dlopen("libc.so.6", RTLD_NOW);
    void* f = dlsym(h, "getpid");
    if (fork() == 0) _exit(0);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    std::thread t([] {});
    t.join();
    return x + (f != nullptr) + s;
}
