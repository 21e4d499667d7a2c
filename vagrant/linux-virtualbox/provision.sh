#!/bin/sh
# Install VirtualBox 7.0 from Oracle's apt repository, its kernel module, and Python test tooling.
set -eu
export DEBIAN_FRONTEND=noninteractive
grep -qE 'vmx|svm' /proc/cpuinfo || { echo "no VT-x/AMD-V in this VM: enable nested virtualization" >&2; exit 1; }
apt-get update
apt-get install -y --no-install-recommends ca-certificates curl gnupg linux-headers-"$(uname -r)" build-essential \
    python3 python3-venv python3-pip git
install -d -m 0755 /etc/apt/keyrings
curl -fsSL https://www.virtualbox.org/download/oracle_vbox_2016.asc | gpg --dearmor --yes -o /etc/apt/keyrings/oracle-vbox.gpg
echo "deb [arch=amd64 signed-by=/etc/apt/keyrings/oracle-vbox.gpg] https://download.virtualbox.org/virtualbox/debian bookworm contrib" \
    > /etc/apt/sources.list.d/virtualbox.list
apt-get update
apt-get install -y virtualbox-7.0
/sbin/vboxconfig
# Host-only networks: VirtualBox >= 6.1.28 allows only 192.168.56.0/21 unless listed here.
install -d /etc/vbox
[ -f /etc/vbox/networks.conf ] || echo "* 192.168.56.0/21" > /etc/vbox/networks.conf
VBoxManage --version
python3 -m venv /opt/machine-venv
/opt/machine-venv/bin/pip install -q -e '/machine[test]'
echo "ready: cd /machine && sudo -E ./vagrant/linux-virtualbox/run-contract.sh"
