# roz: one PVE cluster of two nodes behind the user's own router, itself behind the ISP's; one
# public address (roz.example.net) with a UDP port forwarded to each node: 51820 to pve-roz1,
# 51821 to pve-roz2. The two nodes reach each other over their LAN (lan_endpoint): the routers
# do no hairpin NAT.
evpn:
  sites:
    roz:
      network: 10.1.0.0/24
      exit_nodes: [pve-roz1]
      nodes:
        pve-roz1:
          address: 10.1.0.1
          endpoint: roz.example.net
          lan_endpoint: 192.168.2.11
        pve-roz2:
          address: 10.1.0.2
          endpoint: roz.example.net:51821
          lan_endpoint: 192.168.2.12
      vnets:
        roz1:
          tag: 11001
          subnets:
            10.1.1.0/24: {gateway: 10.1.1.1, snat: true}
      firewall:
        enable: true                  # the cluster firewall on; the LAN keeps SSH and the web UI
        management: [192.168.2.0/24]
        nftables: true                # proxmox-firewall (nftables) on both nodes
