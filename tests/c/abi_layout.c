/*
 * Prints the layout of the boot ABI structures as the real C headers define
 * them: Linux's <asm/bootparam.h> (Debian linux-libc-dev), Xen's
 * <xen/arch-x86/hvm/start_info.h> (Debian libxen-dev) and Linux's
 * kernel-internal arch/x86/include/asm/mpspec_def.h (the MP table; from
 * Debian's linux-headers-*-common, see scripts/setup.sh). Compiled and run by
 * tests/tests/c_headers.rs, which compares every line with the Rust types.
 *
 * Output, one item per line:
 *   sizeof <struct> <bytes>
 *   field <struct> <field> <offset> <bytes>
 *   const <NAME> <value>
 * Offsets of setup_header fields are relative to setup_header itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <asm/bootparam.h>
#include <xen/arch-x86/hvm/start_info.h>
/* Kernel-internal; scripts/setup.sh extracts it from linux-headers-*-common. */
#include <pvh-linux-kernel/mpspec_def.h>

#define SIZEOF(s) printf("sizeof %s %zu\n", #s, sizeof(struct s))
#define FIELD(s, f)                                                        \
	printf("field %s %s %zu %zu\n", #s, #f, offsetof(struct s, f),     \
	       sizeof(((struct s *)0)->f))
/* Every constant here is a 32-bit value; SETUP_INDIRECT is (1<<31), an int. */
#define CONST(name) printf("const %s %lu\n", #name, (unsigned long)(uint32_t)(name))

int main(void)
{
	SIZEOF(boot_params);
	FIELD(boot_params, screen_info);
	FIELD(boot_params, apm_bios_info);
	FIELD(boot_params, _pad2);
	FIELD(boot_params, tboot_addr);
	FIELD(boot_params, ist_info);
	FIELD(boot_params, acpi_rsdp_addr);
	FIELD(boot_params, _pad3);
	FIELD(boot_params, hd0_info);
	FIELD(boot_params, hd1_info);
	FIELD(boot_params, sys_desc_table);
	FIELD(boot_params, olpc_ofw_header);
	FIELD(boot_params, ext_ramdisk_image);
	FIELD(boot_params, ext_ramdisk_size);
	FIELD(boot_params, ext_cmd_line_ptr);
	FIELD(boot_params, _pad4);
	FIELD(boot_params, cc_blob_address);
	FIELD(boot_params, edid_info);
	FIELD(boot_params, efi_info);
	FIELD(boot_params, alt_mem_k);
	FIELD(boot_params, scratch);
	FIELD(boot_params, e820_entries);
	FIELD(boot_params, eddbuf_entries);
	FIELD(boot_params, edd_mbr_sig_buf_entries);
	FIELD(boot_params, kbd_status);
	FIELD(boot_params, secure_boot);
	FIELD(boot_params, _pad5);
	FIELD(boot_params, sentinel);
	FIELD(boot_params, _pad6);
	FIELD(boot_params, hdr);
	FIELD(boot_params, _pad7);
	FIELD(boot_params, edd_mbr_sig_buffer);
	FIELD(boot_params, e820_table);
	FIELD(boot_params, _pad8);
	FIELD(boot_params, eddbuf);
	FIELD(boot_params, _pad9);

	SIZEOF(setup_header);
	FIELD(setup_header, setup_sects);
	FIELD(setup_header, root_flags);
	FIELD(setup_header, syssize);
	FIELD(setup_header, ram_size);
	FIELD(setup_header, vid_mode);
	FIELD(setup_header, root_dev);
	FIELD(setup_header, boot_flag);
	FIELD(setup_header, jump);
	FIELD(setup_header, header);
	FIELD(setup_header, version);
	FIELD(setup_header, realmode_swtch);
	FIELD(setup_header, start_sys_seg);
	FIELD(setup_header, kernel_version);
	FIELD(setup_header, type_of_loader);
	FIELD(setup_header, loadflags);
	FIELD(setup_header, setup_move_size);
	FIELD(setup_header, code32_start);
	FIELD(setup_header, ramdisk_image);
	FIELD(setup_header, ramdisk_size);
	FIELD(setup_header, bootsect_kludge);
	FIELD(setup_header, heap_end_ptr);
	FIELD(setup_header, ext_loader_ver);
	FIELD(setup_header, ext_loader_type);
	FIELD(setup_header, cmd_line_ptr);
	FIELD(setup_header, initrd_addr_max);
	FIELD(setup_header, kernel_alignment);
	FIELD(setup_header, relocatable_kernel);
	FIELD(setup_header, min_alignment);
	FIELD(setup_header, xloadflags);
	FIELD(setup_header, cmdline_size);
	FIELD(setup_header, hardware_subarch);
	FIELD(setup_header, hardware_subarch_data);
	FIELD(setup_header, payload_offset);
	FIELD(setup_header, payload_length);
	FIELD(setup_header, setup_data);
	FIELD(setup_header, pref_address);
	FIELD(setup_header, init_size);
	FIELD(setup_header, handover_offset);
	FIELD(setup_header, kernel_info_offset);

	SIZEOF(boot_e820_entry);
	FIELD(boot_e820_entry, addr);
	FIELD(boot_e820_entry, size);
	FIELD(boot_e820_entry, type);

	/* The header of a node; the flexible data[] follows at sizeof. */
	SIZEOF(setup_data);
	FIELD(setup_data, next);
	FIELD(setup_data, type);
	FIELD(setup_data, len);

	SIZEOF(hvm_start_info);
	FIELD(hvm_start_info, magic);
	FIELD(hvm_start_info, version);
	FIELD(hvm_start_info, flags);
	FIELD(hvm_start_info, nr_modules);
	FIELD(hvm_start_info, modlist_paddr);
	FIELD(hvm_start_info, cmdline_paddr);
	FIELD(hvm_start_info, rsdp_paddr);
	FIELD(hvm_start_info, memmap_paddr);
	FIELD(hvm_start_info, memmap_entries);
	FIELD(hvm_start_info, reserved);

	SIZEOF(hvm_modlist_entry);
	FIELD(hvm_modlist_entry, paddr);
	FIELD(hvm_modlist_entry, size);
	FIELD(hvm_modlist_entry, cmdline_paddr);
	FIELD(hvm_modlist_entry, reserved);

	SIZEOF(hvm_memmap_table_entry);
	FIELD(hvm_memmap_table_entry, addr);
	FIELD(hvm_memmap_table_entry, size);
	FIELD(hvm_memmap_table_entry, type);
	FIELD(hvm_memmap_table_entry, reserved);

	SIZEOF(mpf_intel);
	FIELD(mpf_intel, signature);
	FIELD(mpf_intel, physptr);
	FIELD(mpf_intel, length);
	FIELD(mpf_intel, specification);
	FIELD(mpf_intel, checksum);
	FIELD(mpf_intel, feature1);
	FIELD(mpf_intel, feature2);
	FIELD(mpf_intel, feature3);
	FIELD(mpf_intel, feature4);
	FIELD(mpf_intel, feature5);
	SIZEOF(mpc_table);
	FIELD(mpc_table, signature);
	FIELD(mpc_table, length);
	FIELD(mpc_table, spec);
	FIELD(mpc_table, checksum);
	FIELD(mpc_table, oem);
	FIELD(mpc_table, productid);
	FIELD(mpc_table, oemptr);
	FIELD(mpc_table, oemsize);
	FIELD(mpc_table, oemcount);
	FIELD(mpc_table, lapic);
	FIELD(mpc_table, reserved);
	SIZEOF(mpc_cpu);
	FIELD(mpc_cpu, type);
	FIELD(mpc_cpu, apicid);
	FIELD(mpc_cpu, apicver);
	FIELD(mpc_cpu, cpuflag);
	FIELD(mpc_cpu, cpufeature);
	FIELD(mpc_cpu, featureflag);
	FIELD(mpc_cpu, reserved);
	SIZEOF(mpc_bus);
	FIELD(mpc_bus, type);
	FIELD(mpc_bus, busid);
	FIELD(mpc_bus, bustype);
	SIZEOF(mpc_ioapic);
	FIELD(mpc_ioapic, type);
	FIELD(mpc_ioapic, apicid);
	FIELD(mpc_ioapic, apicver);
	FIELD(mpc_ioapic, flags);
	FIELD(mpc_ioapic, apicaddr);
	SIZEOF(mpc_intsrc);
	FIELD(mpc_intsrc, type);
	FIELD(mpc_intsrc, irqtype);
	FIELD(mpc_intsrc, irqflag);
	FIELD(mpc_intsrc, srcbus);
	FIELD(mpc_intsrc, srcbusirq);
	FIELD(mpc_intsrc, dstapic);
	FIELD(mpc_intsrc, dstirq);
	SIZEOF(mpc_lintsrc);
	FIELD(mpc_lintsrc, type);
	FIELD(mpc_lintsrc, irqtype);
	FIELD(mpc_lintsrc, irqflag);
	FIELD(mpc_lintsrc, srcbusid);
	FIELD(mpc_lintsrc, srcbusirq);
	FIELD(mpc_lintsrc, destapic);
	FIELD(mpc_lintsrc, destapiclint);

	CONST(SMP_MAGIC_IDENT);
	CONST(MP_PROCESSOR);
	CONST(MP_BUS);
	CONST(MP_IOAPIC);
	CONST(MP_INTSRC);
	CONST(MP_LINTSRC);
	CONST(CPU_ENABLED);
	CONST(CPU_BOOTPROCESSOR);
	CONST(MPC_APIC_USABLE);
	CONST(mp_INT);
	CONST(mp_NMI);
	CONST(mp_ExtINT);
	CONST(MP_APIC_ALL);

	CONST(XEN_HVM_START_MAGIC_VALUE);
	CONST(XEN_HVM_MEMMAP_TYPE_RAM);
	CONST(XEN_HVM_MEMMAP_TYPE_RESERVED);
	CONST(XEN_HVM_MEMMAP_TYPE_ACPI);
	CONST(XEN_HVM_MEMMAP_TYPE_NVS);
	CONST(XEN_HVM_MEMMAP_TYPE_UNUSABLE);
	CONST(XEN_HVM_MEMMAP_TYPE_DISABLED);
	CONST(XEN_HVM_MEMMAP_TYPE_PMEM);
#ifdef E820_MAX_ENTRIES_ZEROPAGE
	CONST(E820_MAX_ENTRIES_ZEROPAGE);
#endif
	CONST(SETUP_NONE);
	CONST(SETUP_E820_EXT);
	CONST(SETUP_DTB);
	CONST(SETUP_PCI);
	CONST(SETUP_EFI);
	CONST(SETUP_APPLE_PROPERTIES);
	CONST(SETUP_JAILHOUSE);
#ifdef SETUP_CC_BLOB
	CONST(SETUP_CC_BLOB);
#endif
#ifdef SETUP_IMA
	CONST(SETUP_IMA);
#endif
#ifdef SETUP_RNG_SEED
	CONST(SETUP_RNG_SEED);
#endif
	CONST(SETUP_INDIRECT);
	CONST(LOADED_HIGH);
	CONST(KASLR_FLAG);
	CONST(QUIET_FLAG);
	CONST(KEEP_SEGMENTS);
	CONST(CAN_USE_HEAP);
	CONST(XLF_KERNEL_64);
	CONST(XLF_CAN_BE_LOADED_ABOVE_4G);
	CONST(XLF_EFI_HANDOVER_32);
	CONST(XLF_EFI_HANDOVER_64);
	CONST(XLF_EFI_KEXEC);
#ifdef XLF_5LEVEL
	CONST(XLF_5LEVEL);
#endif
#ifdef XLF_5LEVEL_ENABLED
	CONST(XLF_5LEVEL_ENABLED);
#endif
	return 0;
}
