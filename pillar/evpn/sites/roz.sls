evpn:
  sites:
    roz:
      network: 10.1.0.0/24
      nodes:
        pve-roz1:
          address: 10.1.0.1
          endpoint: roz.example.net
      vnets:
        roz1:
          tag: 11001
          subnets:
            10.1.1.0/24: {gateway: 10.1.1.1, snat: true}
      firewall:
        management: [192.168.2.0/24]
